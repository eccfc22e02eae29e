//! `scoresde serve`: a local web page to run samplers side by side on an
//! exact oracle or a trained checkpoint and watch them work.
//!
//! An axum server on a tokio runtime serves the page (HTML and JavaScript
//! embedded in the binary, [`api`]) and a JSON API; a job ([`run`]) draws
//! the samples, trajectory frames and metrics with the same library calls
//! as `scoresde sample`, on tokio's blocking thread pool, under the
//! [`Limits`] of this module ([`jobs`]: concurrency, progress, cancel).
//! Sources come from [`sources`]; checkpoints only from under the runs
//! directory. The API is documented in docs/serve.md.

pub mod api;
pub mod jobs;
pub mod run;
pub mod sources;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Bounds on what one request or the whole server may ask for.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Limits {
    /// Samples per job for 2-D points.
    pub max_n_points: usize,
    /// Samples per job for images.
    pub max_n_images: usize,
    /// NFE budget per sample.
    pub max_nfe: usize,
    /// Sampler specs per job.
    pub max_samplers: usize,
    /// Jobs running at once.
    pub max_jobs: usize,
    /// Wall time after which a job is stopped.
    pub max_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_n_points: 5_000,
            max_n_images: 64,
            max_nfe: 1_000,
            max_samplers: 4,
            max_jobs: 2,
            max_seconds: 300,
        }
    }
}

/// How to run the server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub host: IpAddr,
    /// 0: any free port.
    pub port: u16,
    /// Where checkpoints are looked for; none outside it is ever read.
    pub runs: PathBuf,
    pub limits: Limits,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            runs: PathBuf::from("runs"),
            limits: Limits::default(),
        }
    }
}

/// Shared by every request.
pub struct AppState {
    pub runs: PathBuf,
    pub limits: Limits,
    pub jobs: jobs::Jobs,
}

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Bind `host:port` and serve on a background thread.
    pub fn start(opts: &ServeOptions) -> Result<Server> {
        let l = &opts.limits;
        for (name, v) in [
            ("max-jobs", l.max_jobs),
            ("max-samplers", l.max_samplers),
            ("max-nfe", l.max_nfe),
            ("max-n", l.max_n_points.min(l.max_n_images)),
        ] {
            if v == 0 {
                return Err(Error::invalid(name, 0, "an integer >= 1"));
            }
        }
        let where_ = format!("{}:{}", opts.host, opts.port);
        let listener = std::net::TcpListener::bind((opts.host, opts.port))
            .map_err(|e| Error::io(&where_, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(&where_, e))?;
        let addr = listener.local_addr().map_err(|e| Error::io(&where_, e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(opts.limits.max_jobs + 4)
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::io(&where_, e))?;
        let state = Arc::new(AppState {
            runs: opts.runs.clone(),
            limits: opts.limits.clone(),
            jobs: jobs::Jobs::new(opts.limits.max_jobs, opts.limits.max_seconds),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(|e| Error::io(&where_, e))?
        };
        let thread = std::thread::Builder::new()
            .name("scoresde-serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let served = axum::serve(listener, api::router(state))
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(e) = served {
                        eprintln!("scoresde serve: {e}");
                    }
                });
                runtime.shutdown_background();
            })
            .map_err(|e| Error::io(&where_, e))?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on (the actual port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Block until the server stops (it does not stop by itself).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
