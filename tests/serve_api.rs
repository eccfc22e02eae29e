//! `scoresde serve`'s JSON API against the library: a job's samples,
//! frames and metrics are the bytes the library returns for the same spec
//! and seed; bad requests get 400 with the library's error text; checkpoint
//! paths stay inside the runs directory; the job limit holds.

mod serve_support;

use std::time::Duration;

use ndarray::Array2;
use serde_json::{json, Value};
use serve_support::*;

use scoresde::app::reference::Reference;
use scoresde::app::serve::Limits;
use scoresde::data::Toy;
use scoresde::model::ScoreModel;
use scoresde::rng::{self, domain};
use scoresde::samplers::{self, SampleOptions};
use scoresde::score::Score;
use scoresde::sde::{Sde, SdeConfig};

const LIMIT: Duration = Duration::from_secs(300);

/// The library's samples (and trajectory, recorded as the server does).
fn library(
    spec: &str,
    steps: usize,
    sde: &dyn Sde,
    score: &dyn Score,
    n: usize,
    seed: u64,
    rows: usize,
) -> samplers::SampleOutput {
    let s = samplers::by_name(spec, steps).unwrap();
    let mut o = SampleOptions::new(n, seed);
    o.record_every = Some((steps / 40).max(1));
    o.record_rows = rows;
    samplers::sample(s.as_ref(), sde, score, &o).unwrap()
}

fn flat(a: &Array2<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn oracle_job_equals_the_library() {
    let runs = temp_dir("serve_api_oracle");
    let server = start(&runs, Limits::default());
    let addr = server.addr();
    let (n, seed) = (600, 7);
    // dpmpp-3m has NFE = steps: budget 10 runs 10 steps; edm (2N - 1) 5.
    let specs = ["ddpm", "dpmpp-3m:schedule=logsnr", "edm"];
    let st = run_job(
        addr,
        &json!({"source": "oracle:25gaussians", "samplers": specs, "nfe": 10, "seed": seed, "n": n}),
        LIMIT,
    );
    assert_eq!(st["state"], "done", "{st}");
    let r = &st["result"];
    let sde_cfg = SdeConfig::by_name("vp").unwrap();
    let (oracle, sde) =
        scoresde::oracle::for_toy(Toy::from_name("25gaussians").unwrap(), &sde_cfg).unwrap();
    let reference = Reference::new(
        Toy::from_name("25gaussians").unwrap(),
        n,
        rng::derive(seed, domain::SAMPLE_REFERENCE, 0),
    );
    for (p, (spec, steps)) in r["panels"].as_array().unwrap().iter().zip([
        ("ddpm", 10),
        ("dpmpp-3m:schedule=logsnr", 10),
        ("edm", 5),
    ]) {
        let out = library(
            spec,
            steps,
            sde.as_ref(),
            oracle.as_ref(),
            n,
            seed,
            n.min(1000),
        );
        assert_eq!(
            bits(&f32s(&p["samples"])),
            flat(&out.samples),
            "{spec}: samples"
        );
        assert_eq!(p["steps"], steps);
        assert_eq!(p["nfe"], out.nfe);
        // Frames: the library's trajectory, at most 41 of its frames.
        let tr = out.trajectory.unwrap();
        let frames = p["frames"]["x"].as_array().unwrap();
        assert_eq!(frames.len(), tr.frames.len().min(41));
        assert_eq!(
            bits(&f32s(&frames[0])),
            flat(&tr.frames[0]),
            "{spec}: prior frame"
        );
        assert_eq!(
            bits(&f32s(frames.last().unwrap())),
            flat(tr.frames.last().unwrap())
        );
        // Metrics: what `scoresde sample` computes, to the last bit (of the JSON text).
        let q = reference.quality(Toy::from_name("25gaussians").unwrap(), &out.samples);
        let m = &p["metrics"];
        assert_eq!(m["swd"]["mean"].as_f64().unwrap(), via_json(q.swd.mean));
        assert_eq!(m["swd"]["se"].as_f64().unwrap(), via_json(q.swd.se));
        assert_eq!(
            m["floor"]["mean"].as_f64().unwrap(),
            via_json(reference.floor.mean)
        );
        assert_eq!(m["mmd"].as_f64().unwrap(), via_json(q.mmd));
        assert_eq!(
            m["swd_over_floor"].as_f64().unwrap(),
            via_json(q.swd.mean / reference.floor.mean)
        );
    }
    // Panels share the seed: every one starts from the same prior draws.
    let p = r["panels"].as_array().unwrap();
    assert_eq!(p[0]["frames"]["x"][0], p[1]["frames"]["x"][0]);
}

#[test]
fn checkpoint_and_image_jobs_equal_the_library() {
    let runs = temp_dir("serve_api_ckpt");
    copy_fixture(&runs.join("toy/moons"));
    let server = start(&runs, Limits::default());
    let addr = server.addr();
    let ids = source_ids(addr);
    for want in [
        "oracle:checkerboard",
        "oracle:8gaussians",
        "oracle:25gaussians",
        "empirical:digits",
        "checkpoint:toy/moons",
    ] {
        assert!(ids.iter().any(|i| i == want), "{want} not in {ids:?}");
    }
    let st = run_job(
        addr,
        &json!({"source": "checkpoint:toy/moons", "samplers": ["em"], "nfe": 8, "seed": 3, "n": 300}),
        LIMIT,
    );
    assert_eq!(st["state"], "done", "{st}");
    let model = ScoreModel::load(&runs.join("toy/moons")).unwrap();
    let out = library("em", 8, model.sde(), &model, 300, 3, 300);
    let p = &st["result"]["panels"][0];
    assert_eq!(bits(&f32s(&p["samples"])), flat(&out.samples));
    let reference = Reference::new(
        Toy::from_name("moons").unwrap(),
        300,
        rng::derive(3, domain::SAMPLE_REFERENCE, 0),
    );
    let q = reference.quality(Toy::from_name("moons").unwrap(), &out.samples);
    assert_eq!(
        p["metrics"]["swd"]["mean"].as_f64().unwrap(),
        via_json(q.swd.mean)
    );

    // Images: the exact empirical score of the digits' training half; the
    // metrics are `eval`'s.
    let st = run_job(
        addr,
        &json!({"source": "empirical:digits", "samplers": ["ddim"], "nfe": 12, "seed": 1, "n": 16}),
        LIMIT,
    );
    assert_eq!(st["state"], "done", "{st}");
    let (train, _) = scoresde::imaging::eval_sets("digits").unwrap();
    let vp = SdeConfig::by_name("vp").unwrap();
    let score = scoresde::oracle::EmpiricalScore::new(train.pixels.view(), &vp).unwrap();
    let out = library("ddim", 12, vp.build().unwrap().as_ref(), &score, 16, 1, 16);
    let p = &st["result"]["panels"][0];
    assert_eq!(st["result"]["shape"], json!([1, 8, 8]));
    assert_eq!(bits(&f32s(&p["samples"])), flat(&out.samples));
    let e = scoresde::imaging::evaluate(out.samples.view(), "digits").unwrap();
    assert_eq!(p["metrics"]["fd"].as_f64().unwrap(), via_json(e.fd));
    assert_eq!(
        p["metrics"]["fd_floor"].as_f64().unwrap(),
        via_json(e.fd_floor)
    );
    assert_eq!(p["frames"]["encoding"], "u8");
    assert_eq!(
        p["frames"]["x0"].as_array().unwrap().len(),
        p["frames"]["x"].as_array().unwrap().len()
    );
}

/// POST a job that must be refused with 400 and exactly `text`.
fn refused(addr: std::net::SocketAddr, body: &Value, text: &str) {
    let (st, r) = json(addr, "POST", "/api/jobs", Some(&body.to_string()));
    assert_eq!(st, 400, "{body} -> {r}");
    assert_eq!(r["error"].as_str().unwrap(), text, "{body}");
}

#[test]
fn bad_requests_get_400_with_the_library_text() {
    let runs = temp_dir("serve_api_bad");
    let server = start(&runs, Limits::default());
    let addr = server.addr();
    let job = |samplers: Value, nfe: Value, n: Value| json!({"source": "oracle:25gaussians", "samplers": samplers, "nfe": nfe, "n": n});
    let lib = |spec: &str| samplers::by_name(spec, 10).err().unwrap().to_string();
    refused(
        addr,
        &job(json!(["nope"]), json!(10), json!(100)),
        &lib("nope"),
    );
    refused(
        addr,
        &job(json!(["edm:churn=x"]), json!(10), json!(100)),
        &lib("edm:churn=x"),
    );
    refused(
        addr,
        &job(json!(["em:bogus=1"]), json!(10), json!(100)),
        &lib("em:bogus=1"),
    );
    // A sampler that rejects the SDE: the library's validate() text.
    let ve_only = samplers::by_name("ald", 10).unwrap();
    let vp = SdeConfig::by_name("vp").unwrap().build().unwrap();
    refused(
        addr,
        &job(json!(["ald"]), json!(10), json!(100)),
        &ve_only.validate(vp.as_ref()).unwrap_err().to_string(),
    );
    refused(
        addr,
        &json!({"source": "oracle:25gaussians", "sde": "xx", "samplers": ["em"], "nfe": 10, "n": 100}),
        &SdeConfig::by_name("xx").unwrap_err().to_string(),
    );
    refused(
        addr,
        &json!({"source": "oracle:moons", "samplers": ["em"], "nfe": 10, "n": 100}),
        &scoresde::oracle::for_toy(
            Toy::from_name("moons").unwrap(),
            &SdeConfig::by_name("vp").unwrap(),
        )
        .err()
        .unwrap()
        .to_string(),
    );
    refused(
        addr,
        &job(json!(["em"]), json!(0), json!(100)),
        "invalid nfe = 0: expected an integer in 1..=1000",
    );
    refused(
        addr,
        &job(json!(["em"]), json!(1001), json!(100)),
        "invalid nfe = 1001: expected an integer in 1..=1000",
    );
    refused(addr, &job(json!(["em"]), json!(10), json!(5001)), "invalid n = 5001: expected an integer in 2..=5000 for 2-D points (the metrics need two samples)");
    refused(
        addr,
        &job(json!([]), json!(10), json!(100)),
        "invalid samplers = 0: expected 1..=4 sampler specs",
    );
    refused(
        addr,
        &job(json!(["em", "em", "em", "em", "em"]), json!(10), json!(100)),
        "invalid samplers = 5: expected 1..=4 sampler specs",
    );
    refused(addr, &job(json!(["em:steps=5"]), json!(10), json!(100)), "invalid sampler = em:steps=5: expected a spec without steps= (the NFE budget sets the steps)");
    refused(addr, &job(json!(["ddim:schedule=/etc/passwd"]), json!(10), json!(100)),
        "invalid schedule = /etc/passwd: expected a named schedule or a list of times (the server reads no schedule files)");
    refused(addr, &job(json!(["ddim:schedule=Cargo.toml"]), json!(10), json!(100)),
        "invalid schedule = Cargo.toml: expected a named schedule or a list of times (the server reads no schedule files)");
    for body in [
        "{",
        "[]",
        r#"{"source": "oracle:25gaussians", "samplers": ["em"], "nfe": 10, "n": 100, "extra": 1}"#,
        r#"{"source": 1}"#,
    ] {
        let (st, r) = json(addr, "POST", "/api/jobs", Some(body));
        assert_eq!(st, 400, "{body}");
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid request body: "),
            "{r}"
        );
    }
    let (st, _) = json(addr, "GET", "/api/jobs/abc", None);
    assert_eq!(st, 400);
    let (st, _) = json(addr, "GET", "/api/jobs/999", None);
    assert_eq!(st, 404);
    // The sampler list is the registry.
    let (_, s) = json(addr, "GET", "/api/samplers", None);
    let names: Vec<&str> = s["samplers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, *samplers::SAMPLER_NAMES);
    assert_eq!(s["help"].as_str().unwrap(), samplers::help());
}

#[test]
fn checkpoints_outside_the_runs_directory_are_refused() {
    let base = temp_dir("serve_api_paths");
    let runs = base.join("runs");
    copy_fixture(&runs.join("inside"));
    copy_fixture(&base.join("outside"));
    #[cfg(unix)]
    std::os::unix::fs::symlink(base.join("outside"), runs.join("link")).unwrap();
    let server = start(&runs, Limits::default());
    let addr = server.addr();
    let ids = source_ids(addr);
    assert!(ids.iter().any(|i| i == "checkpoint:inside"));
    assert!(
        !ids.iter()
            .any(|i| i.contains("outside") || i.contains("link")),
        "{ids:?}"
    );
    let outside = base.join("outside").display().to_string();
    for rel in [
        "../outside",
        "inside/../../outside",
        outside.as_str(),
        "link",
        "",
        "./inside",
    ] {
        let id = format!("checkpoint:{rel}");
        refused(addr, &json!({"source": id, "samplers": ["em"], "nfe": 5, "n": 10}),
            &format!("invalid source = {id}: expected a checkpoint directory inside the runs directory (a relative path without ..)"));
    }
    refused(addr, &json!({"source": "checkpoint:inside", "sde": "vp", "samplers": ["em"], "nfe": 5, "n": 10}),
        "invalid sde = vp: expected no sde with a checkpoint (it brings the SDE it was trained with)");
    let st = run_job(
        addr,
        &json!({"source": "checkpoint:inside", "samplers": ["em"], "nfe": 5, "n": 10}),
        LIMIT,
    );
    assert_eq!(st["state"], "done");
}

#[test]
fn the_job_limit_holds_and_jobs_cancel() {
    let runs = temp_dir("serve_api_limit");
    let server = start(
        &runs,
        Limits {
            max_jobs: 2,
            ..Limits::default()
        },
    );
    let addr = server.addr();
    // Two long jobs (4 × 1000 steps of 5000 points) fill the server ...
    let long = json!({"source": "oracle:checkerboard", "samplers": ["em", "ddpm", "ode-heun", "pc"], "nfe": 1000, "n": 5000});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (st, r) = json(addr, "POST", "/api/jobs", Some(&long.to_string()));
        assert_eq!(st, 202, "{r}");
        ids.push(r["id"].as_u64().unwrap());
    }
    // ... so a third is refused with 429 and says why.
    let (st, r) = json(addr, "POST", "/api/jobs", Some(&long.to_string()));
    assert_eq!(st, 429, "{r}");
    assert_eq!(
        r["error"],
        "2 jobs are running, the limit is 2: wait for one to finish or cancel it"
    );
    for &id in &ids {
        let (st, _) = json(addr, "POST", &format!("/api/jobs/{id}/cancel"), Some("{}"));
        assert_eq!(st, 200);
    }
    for &id in &ids {
        let s = wait(addr, id, LIMIT);
        assert_eq!(s["state"], "cancelled", "{s}");
        assert!(s.get("result").is_none());
    }
    // Freed: a new job is admitted and finishes.
    let st = run_job(
        addr,
        &json!({"source": "oracle:8gaussians", "samplers": ["em"], "nfe": 5, "n": 50}),
        LIMIT,
    );
    assert_eq!(st["state"], "done");
}
