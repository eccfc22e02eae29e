//! Shared by the `serve_*` tests: a server on a free port over a temporary
//! runs directory, and a minimal blocking HTTP/1.1 client (std only).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scoresde::app::serve::{Limits, ServeOptions, Server};

/// A fresh, empty directory under the target dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Copy the checkpoint fixture (a tiny MLP trained on moons) to `dst`.
pub fn copy_fixture(dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mlp_v2_checkpoint");
    for f in [
        "config.json",
        "model.safetensors",
        "train_state.safetensors",
    ] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
}

/// A server on 127.0.0.1 and a free port.
pub fn start(runs: &Path, limits: Limits) -> Server {
    Server::start(&ServeOptions {
        port: 0,
        runs: runs.to_path_buf(),
        limits,
        ..ServeOptions::default()
    })
    .unwrap()
}

/// One request; returns (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    // Read the head, then exactly the body (a peer may keep the connection
    // open despite `Connection: close`).
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let k = s.read(&mut buf).unwrap();
        assert!(k > 0, "connection closed before the response head");
        raw.extend_from_slice(&buf[..k]);
    };
    let head = String::from_utf8(raw[..head_end].to_vec())
        .unwrap()
        .to_ascii_lowercase();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[head_end + 4..].to_vec();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let complete = match length {
            Some(n) => body.len() >= n,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let k = s.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        body.extend_from_slice(&buf[..k]);
    }
    let text = String::from_utf8(body).unwrap();
    let body = if chunked { dechunk(&text) } else { text };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (len, rest) = s.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(len.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

pub fn json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (st, b) = http(addr, method, path, body);
    (
        st,
        serde_json::from_str(&b).unwrap_or_else(|e| panic!("{e}: {b}")),
    )
}

/// Start a job and poll it until it is no longer running (at most `limit`).
pub fn run_job(addr: SocketAddr, req: &serde_json::Value, limit: Duration) -> serde_json::Value {
    let (st, r) = json(addr, "POST", "/api/jobs", Some(&req.to_string()));
    assert_eq!(st, 202, "{r}");
    wait(addr, r["id"].as_u64().unwrap(), limit)
}

pub fn wait(addr: SocketAddr, id: u64, limit: Duration) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (st, s) = json(addr, "GET", &format!("/api/jobs/{id}"), None);
        assert_eq!(st, 200, "{s}");
        if s["state"] != "running" {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "job {id} still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Little-endian f32 values of a base64 string.
pub fn f32s(b64: &serde_json::Value) -> Vec<f32> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_str().unwrap())
        .unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `x` as a client reads it from the server's JSON: serialised (shortest
/// round-trip digits) and parsed back by serde_json. serde_json's default
/// parser may round 17-digit numbers one ulp off, so an exact comparison
/// of a JSON value with a library `f64` puts both through it.
pub fn via_json(x: f64) -> f64 {
    serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap()
}

/// The ids `GET /api/sources` lists.
pub fn source_ids(addr: SocketAddr) -> Vec<String> {
    let (_, src) = json(addr, "GET", "/api/sources", None);
    src["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}
