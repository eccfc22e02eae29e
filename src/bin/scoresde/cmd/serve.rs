//! `scoresde serve`: start the sampler explorer and print its URL.

use anyhow::{bail, Result};

use scoresde::app::serve::{Limits, ServeOptions, Server};

use crate::args::ServeArgs;

pub(crate) fn run_serve(a: ServeArgs) -> Result<()> {
    let host: std::net::IpAddr = match a.host.as_str() {
        "localhost" => std::net::IpAddr::from([127, 0, 0, 1]),
        h => match h.parse() {
            Ok(ip) => ip,
            Err(_) => {
                bail!("invalid host = {h}: expected an IP address such as 127.0.0.1 (or localhost)")
            }
        },
    };
    let limits = Limits {
        max_jobs: a.max_jobs,
        ..Limits::default()
    };
    let opts = ServeOptions {
        host,
        port: a.port,
        runs: a.runs,
        limits,
    };
    let server = Server::start(&opts)?;
    if !host.is_loopback() {
        eprintln!(
            "warning: listening on {host}, reachable from other machines; the page has no authentication"
        );
    }
    println!(
        "scoresde serve: {} (checkpoints from {}; Ctrl-C to stop)",
        server.url(),
        opts.runs.display()
    );
    server.wait();
    Ok(())
}
