//! The HTTP routes: the page, its script, and the JSON API (docs/serve.md).
//!
//! | route | what |
//! |---|---|
//! | `GET /` , `GET /app.js` | the page (embedded) |
//! | `GET /api/sources` | sources: oracles, empirical image sets, checkpoints under the runs directory |
//! | `GET /api/samplers` | the sampler registry, schedules and the server's limits |
//! | `POST /api/jobs` | start a job ([`JobRequest`]); 202 with its id, 400 with the CLI's error text, 429 at the job limit |
//! | `GET /api/jobs/{id}` | progress, then the result |
//! | `POST /api/jobs/{id}/cancel` | stop a job |

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use super::jobs::State as JobState;
use super::run::{self, JobRequest};
use super::{sources, AppState};
use crate::samplers::{self, Nfe};

const INDEX_HTML: &str = include_str!("static/index.html");
const APP_JS: &str = include_str!("static/app.js");
/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// The routes over shared state.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP_JS,
                )
            }),
        )
        .route("/api/sources", get(list_sources))
        .route("/api/samplers", get(list_samplers))
        .route("/api/jobs", post(start_job))
        .route("/api/jobs/{id}", get(job_status))
        .route("/api/jobs/{id}/cancel", post(cancel_job))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// `{"error": text}` with a status.
fn error(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({ "error": text.into() }))).into_response()
}

async fn list_sources(State(st): State<Arc<AppState>>) -> Response {
    let runs = st.runs.clone();
    match tokio::task::spawn_blocking(move || sources::list(&runs)).await {
        Ok(list) => Json(json!({ "sources": list })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// One registered sampler.
#[derive(Serialize)]
struct SamplerInfo {
    name: &'static str,
    aliases: &'static [&'static str],
    help: &'static str,
    /// NFE = per_step · steps + offset; null for adaptive samplers.
    per_step: Option<usize>,
    offset: Option<isize>,
}

/// The sampler registry (`samplers::entries`), the named schedules and the limits.
pub fn samplers_json(st: &AppState) -> serde_json::Value {
    let list: Vec<SamplerInfo> = samplers::entries()
        .map(|e| {
            let cost = samplers::by_name(e.name, 1).map(|s| s.cost()).ok();
            let (per_step, offset) = match cost {
                Some(Nfe::Fixed { per_step, offset }) => (Some(per_step), Some(offset)),
                _ => (None, None),
            };
            SamplerInfo {
                name: e.name,
                aliases: e.aliases,
                help: e.help,
                per_step,
                offset,
            }
        })
        .collect();
    let schedules: Vec<_> = samplers::schedule::SCHEDULES
        .iter()
        .map(|(n, d)| json!({ "name": n, "description": d }))
        .collect();
    json!({
        "samplers": list,
        "schedules": schedules,
        "sdes": ["vp", "subvp", "ve"],
        "help": samplers::help(),
        "limits": st.limits,
    })
}

async fn list_samplers(State(st): State<Arc<AppState>>) -> Response {
    Json(samplers_json(&st)).into_response()
}

async fn start_job(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: JobRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
            )
        }
    };
    let st2 = st.clone();
    // Checking reads a checkpoint's config and loading reads its weights:
    // off the async workers.
    let checked =
        tokio::task::spawn_blocking(move || run::check(&req, &st2.limits, &st2.runs)).await;
    let checked = match checked {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let total = (checked.n * checked.samplers.len()) as u64;
    let job = match st.jobs.admit(total) {
        Ok(j) => j,
        Err(why) => return error(StatusCode::TOO_MANY_REQUESTS, why),
    };
    let loaded = {
        let checked = Arc::new(checked);
        let c = checked.clone();
        match tokio::task::spawn_blocking(move || run::load(&c)).await {
            Ok(Ok(l)) => (checked, l),
            Ok(Err(e)) => {
                job.finish(JobState::Failed, None, Some(e.to_string()));
                return error(StatusCode::BAD_REQUEST, e.to_string());
            }
            Err(e) => {
                job.finish(JobState::Failed, None, Some(e.to_string()));
                return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
            }
        }
    };
    let id = job.id;
    tokio::task::spawn_blocking(move || {
        let (checked, src) = loaded;
        match run::run(&checked, &src, &job) {
            Ok(Some(r)) => job.finish(JobState::Done, Some(r), None),
            Ok(None) if job.timed_out() => job.finish(
                JobState::Failed,
                None,
                Some("stopped at the server's time limit per job".into()),
            ),
            Ok(None) => job.finish(JobState::Cancelled, None, None),
            Err(e) => job.finish(JobState::Failed, None, Some(e.to_string())),
        }
    });
    (StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response()
}

fn parse_id(id: &str) -> Result<u64, Box<Response>> {
    id.parse::<u64>().map_err(|_| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("invalid job id = {id}: expected a non-negative integer"),
        ))
    })
}

async fn job_status(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    match st.jobs.get(id) {
        Some(j) => Json(j.status()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no job {id}")),
    }
}

async fn cancel_job(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    match st.jobs.get(id) {
        Some(j) => {
            j.cancel();
            Json(json!({ "id": id, "state": j.state() })).into_response()
        }
        None => error(StatusCode::NOT_FOUND, format!("no job {id}")),
    }
}
