//! Time schedules: the grid T = t_0 > t_1 > … > t_N = ε a fixed-step sampler
//! walks, chosen independently of the sampler (`schedule=NAME` in a spec).
//!
//! Most schedules are defined in the noise level of the data-scaled variable
//! (EDM's σ, k-diffusion's `sigmas`):
//!
//! ```text
//!   σ̃(t) = sigma(t) / alpha(t) = exp(−lambda(t)),   σ̃_max = σ̃(T), σ̃_min = σ̃(ε)
//! ```
//!
//! and mapped to SDE times through `t = t_of_lambda(−ln σ̃)`, so one schedule
//! works on VP, sub-VP and VE. With u_i = i/N, i = 0..N:
//!
//! | name | grid |
//! |---|---|
//! | `uniform` | t_i = T − i (T − ε)/N |
//! | `logsnr` (= `exponential`) | lambda_i = lambda(T) + u_i (lambda(ε) − lambda(T)): uniform in ln σ̃ |
//! | `karras:rho=7` | σ̃_i = (σ̃_max^{1/ρ} + u_i (σ̃_min^{1/ρ} − σ̃_max^{1/ρ}))^ρ |
//! | `polyexponential:rho=1` | ln σ̃_i = ln σ̃_min + (1 − u_i)^ρ (ln σ̃_max − ln σ̃_min) |
//! | `vp:beta_d=19.9:beta_min=0.1` | σ̃_i = sqrt(exp(½ β_d τ_i² + β_min τ_i) − 1), τ uniform between the τ of σ̃_max and of σ̃_min |
//! | `0.9,0.5,…` or `file.json` | the given times (T and ε added at the ends if missing) |
//!
//! The first and last times are always exactly T and ε. `vp` is EDM's
//! "VP" spacing with its endpoints moved onto the SDE's range; on the default
//! VP SDE (β from 0.1 to 20) it is the uniform grid. A user list with another
//! number of steps than asked for is interpolated linearly in lambda over the
//! step index (as "Align Your Steps" does), so an optimised 10-step schedule
//! also gives a 20-step one. A JSON file holds an array of times, or an object
//! with a `"times"` array (what `scoresde schedule` writes).

use std::path::Path;

use crate::error::{Error, Result};
use crate::sde::{check_steps, Sde};

/// Which grid a fixed-step sampler walks.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// Uniform in t.
    Uniform,
    /// Uniform in lambda = ln(alpha/sigma), i.e. in ln σ̃ (k-diffusion's
    /// "exponential").
    LogSnr,
    /// Karras et al. (2022) ρ-spacing of σ̃.
    Karras { rho: f64 },
    /// k-diffusion's polyexponential spacing (ρ = 1 is `LogSnr`).
    PolyExponential { rho: f64 },
    /// EDM's VP spacing.
    Vp { beta_d: f64, beta_min: f64 },
    /// User-given times, strictly decreasing, in (ε, T]; `source` is the
    /// file they came from, if any.
    List {
        times: Vec<f64>,
        source: Option<String>,
    },
}

/// Names accepted by [`Schedule::parse`], with a one-line description.
pub const SCHEDULES: &[(&str, &str)] = &[
    ("uniform", "uniform in t"),
    ("logsnr", "uniform in log-SNR (alias: exponential)"),
    ("karras", "Karras rho-spacing of sigma (rho=7)"),
    ("polyexponential", "k-diffusion polyexponential (rho=1)"),
    ("vp", "EDM's VP spacing (beta_d=19.9, beta_min=0.1)"),
];

impl Schedule {
    /// Parse `uniform`, `logsnr`, `exponential`, `karras[:rho=R]`,
    /// `polyexponential[:rho=R]`, `vp[:beta_d=B:beta_min=B]`, a comma list of
    /// times, or the path of a JSON file.
    pub fn parse(spec: &str) -> Result<Schedule> {
        let spec = spec.trim();
        if spec.ends_with(".json") || Path::new(spec).is_file() {
            return Self::from_file(Path::new(spec));
        }
        if spec.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            let times = spec
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map_err(|_| Error::invalid("schedule time", v, "a number"))
                })
                .collect::<Result<Vec<f64>>>()?;
            return Ok(Schedule::List {
                times,
                source: None,
            });
        }
        let mut parts = spec.split(':');
        let name = parts.next().unwrap_or("").trim();
        let mut kv: Vec<(String, f64)> = Vec::new();
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                return Err(Error::invalid(
                    "schedule parameter",
                    p,
                    format!("key=value in `{spec}`"),
                ));
            };
            let val = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| Error::invalid(k.trim(), v, "a finite number"))?;
            if kv.iter().any(|(key, _)| key == k.trim()) {
                return Err(Error::invalid("schedule parameter", k, "each key once"));
            }
            kv.push((k.trim().to_string(), val));
        }
        let mut take = |key: &str, default: f64| -> f64 {
            match kv.iter().position(|(k, _)| k == key) {
                Some(i) => kv.remove(i).1,
                None => default,
            }
        };
        let s = match name {
            "uniform" => Schedule::Uniform,
            "logsnr" | "log-snr" | "exponential" => Schedule::LogSnr,
            "karras" => Schedule::Karras {
                rho: take("rho", 7.0),
            },
            "polyexponential" => Schedule::PolyExponential {
                rho: take("rho", 1.0),
            },
            "vp" => Schedule::Vp {
                beta_d: take("beta_d", 19.9),
                beta_min: take("beta_min", 0.1),
            },
            other => {
                let names: Vec<&str> = SCHEDULES.iter().map(|s| s.0).collect();
                return Err(Error::invalid(
                    "schedule",
                    other,
                    format!(
                        "one of: {}, a comma list of times, or a .json file",
                        names.join(", ")
                    ),
                ));
            }
        };
        if let Some((k, v)) = kv.first() {
            return Err(Error::invalid(
                format!("parameter of schedule {name}"),
                format!("{k}={v}"),
                "a parameter this schedule takes",
            ));
        }
        s.check_params()?;
        Ok(s)
    }

    /// Load a list of times from a JSON file: an array, or `{"times": [...]}`.
    pub fn from_file(path: &Path) -> Result<Schedule> {
        let text = read_small_text(path)?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::invalid("schedule file", path.display(), format!("valid JSON ({e})"))
        })?;
        let arr = match &v {
            serde_json::Value::Array(a) => Some(a),
            serde_json::Value::Object(o) => o.get("times").and_then(|t| t.as_array()),
            _ => None,
        }
        .ok_or_else(|| {
            Error::invalid(
                "schedule file",
                path.display(),
                "a JSON array of times or an object with a \"times\" array",
            )
        })?;
        let times = arr
            .iter()
            .map(|x| {
                x.as_f64().ok_or_else(|| {
                    Error::invalid(
                        "schedule time",
                        x,
                        format!("a number in {}", path.display()),
                    )
                })
            })
            .collect::<Result<Vec<f64>>>()?;
        Ok(Schedule::List {
            times,
            source: Some(path.display().to_string()),
        })
    }

    fn check_params(&self) -> Result<()> {
        match *self {
            Schedule::Karras { rho } | Schedule::PolyExponential { rho }
                if !(rho > 0.0 && rho.is_finite()) =>
            {
                return Err(Error::invalid("rho", rho, "0 < rho < inf (EDM uses 7)"));
            }
            Schedule::Vp { beta_d, beta_min } => {
                if !(beta_d > 0.0 && beta_d <= 1e6) {
                    return Err(Error::invalid("beta_d", beta_d, "0 < beta_d <= 1e6"));
                }
                if !(0.0..=1e6).contains(&beta_min) {
                    return Err(Error::invalid("beta_min", beta_min, "0 <= beta_min <= 1e6"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The spec that [`Schedule::parse`] reads back.
    pub fn spec(&self) -> String {
        match self {
            Schedule::Uniform => "uniform".into(),
            Schedule::LogSnr => "logsnr".into(),
            Schedule::Karras { rho } => format!("karras:rho={rho}"),
            Schedule::PolyExponential { rho } => format!("polyexponential:rho={rho}"),
            Schedule::Vp { beta_d, beta_min } => {
                format!("vp:beta_d={beta_d}:beta_min={beta_min}")
            }
            Schedule::List {
                source: Some(p), ..
            } => p.clone(),
            Schedule::List { times, .. } => times
                .iter()
                .map(|t| format!("{t:?}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// Short display form: the spec, a file by its name, an inline list by
    /// its length.
    pub fn short(&self) -> String {
        match self {
            Schedule::List {
                source: Some(p), ..
            } => Path::new(p)
                .file_name()
                .map_or(p.clone(), |f| f.to_string_lossy().into_owned()),
            Schedule::List { times, .. } => format!("list of {}", times.len()),
            other => other.spec(),
        }
    }

    /// For display labels: `""` at `default`, else `", "` and [`Schedule::short`].
    pub fn label_suffix(&self, default: &Schedule) -> String {
        if self == default {
            String::new()
        } else {
            format!(", {}", self.short())
        }
    }

    /// Check the schedule against an SDE (a user list must be strictly
    /// decreasing and inside (ε, T]).
    pub fn validate(&self, sde: &dyn Sde) -> Result<()> {
        self.check_params()?;
        if let Schedule::List { times, .. } = self {
            let (t_max, t_eps) = (sde.t_max(), sde.t_eps());
            if times.is_empty() {
                return Err(Error::invalid("schedule", "[]", "at least one time"));
            }
            if let Some(t) = times.iter().find(|t| !(**t > t_eps && **t <= t_max)) {
                return Err(Error::invalid(
                    "schedule time",
                    t,
                    format!("a time in (eps, T] = ({t_eps}, {t_max}]"),
                ));
            }
            if let Some(w) = times.windows(2).find(|w| w[1] >= w[0]) {
                return Err(Error::invalid(
                    "schedule",
                    format!("{} then {}", w[0], w[1]),
                    "strictly decreasing times",
                ));
            }
        }
        Ok(())
    }

    /// The grid of `n` steps (n + 1 times) on `sde`.
    pub fn grid(&self, sde: &dyn Sde, n: usize) -> Result<Grid> {
        check_steps(n)?;
        self.validate(sde)?;
        Ok(self.grid_unchecked(sde, n))
    }

    /// [`Schedule::grid`] for a schedule already validated against `sde`.
    pub(crate) fn grid_unchecked(&self, sde: &dyn Sde, n: usize) -> Grid {
        let (t_max, t_eps) = (sde.t_max(), sde.t_eps());
        let scaled = |t: f64| sde.sigma(t) / sde.alpha(t);
        let (s_max, s_min) = (scaled(t_max), scaled(t_eps));
        let u = |i: usize| i as f64 / n as f64;
        // Interior times from σ̃; the ends are set exactly below.
        let from_sigma = |f: &dyn Fn(f64) -> f64| -> Vec<(f64, f64)> {
            (0..=n)
                .map(|i| {
                    let st = f(u(i));
                    let t = sde.t_of_lambda(-st.ln()).clamp(t_eps, t_max);
                    (t, st)
                })
                .collect()
        };
        let mut pts: Vec<(f64, f64)> = match self {
            Schedule::Uniform => (0..=n)
                .map(|i| {
                    let t = t_max - i as f64 * (t_max - t_eps) / n as f64;
                    (t, scaled(t))
                })
                .collect(),
            Schedule::LogSnr => {
                let (lam_min, lam_max) = (sde.lambda(t_max), sde.lambda(t_eps));
                (0..=n)
                    .map(|i| {
                        let t = sde.t_of_lambda(lam_min + (lam_max - lam_min) * u(i));
                        (t, scaled(t))
                    })
                    .collect()
            }
            Schedule::Karras { rho } => {
                // σ̃_max exp(ρ ln(1 + u (r − 1))), r = (σ̃_min/σ̃_max)^{1/ρ}: no
                // power overflows for any ρ; clamped against rounding at tiny ρ.
                let r_minus_1 = ((s_min / s_max).ln() / rho).exp_m1();
                from_sigma(&|u| (s_max * (rho * (u * r_minus_1).ln_1p()).exp()).max(s_min))
            }
            Schedule::PolyExponential { rho } => {
                let (l_max, l_min) = (s_max.ln(), s_min.ln());
                from_sigma(&|u| (l_min + (1.0 - u).powf(*rho) * (l_max - l_min)).exp())
            }
            Schedule::Vp { beta_d, beta_min } => {
                let tau = |st: f64| {
                    let l = st.powi(2).ln_1p();
                    (-beta_min + (beta_min * beta_min + 2.0 * beta_d * l).sqrt()) / beta_d
                };
                let (hi, lo) = (tau(s_max), tau(s_min));
                from_sigma(&|u| {
                    let tv = hi + u * (lo - hi);
                    (0.5 * beta_d * tv * tv + beta_min * tv).exp_m1().sqrt()
                })
            }
            Schedule::List { times, .. } => {
                let mut full = times.clone();
                if full[0] < t_max {
                    full.insert(0, t_max);
                }
                full.push(t_eps);
                let m = full.len() - 1;
                if m == n {
                    full.iter().map(|&t| (t, scaled(t))).collect()
                } else {
                    // Linear in lambda over the normalised step index.
                    let lam: Vec<f64> = full.iter().map(|&t| sde.lambda(t)).collect();
                    (0..=n)
                        .map(|i| {
                            let pos = u(i) * m as f64;
                            let j = (pos.floor() as usize).min(m - 1);
                            let w = pos - j as f64;
                            if w == 0.0 {
                                return (full[j], scaled(full[j]));
                            }
                            let l = lam[j] + w * (lam[j + 1] - lam[j]);
                            let t = sde.t_of_lambda(l).clamp(t_eps, t_max);
                            (t, scaled(t))
                        })
                        .collect()
                }
            }
        };
        pts[0].0 = t_max;
        pts[n].0 = t_eps;
        Grid {
            t: pts.iter().map(|p| p.0).collect(),
            sigma: pts.iter().map(|p| p.1).collect(),
        }
    }
}

/// A time grid T = t_0 > … > t_N = ε with the noise level σ̃_i = σ/α of each
/// point (from the schedule's own formula where it is defined in σ̃).
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    t: Vec<f64>,
    sigma: Vec<f64>,
}

impl Grid {
    /// Number of steps N.
    pub fn steps(&self) -> usize {
        self.t.len() - 1
    }
    /// The N + 1 times, t_0 = T first.
    pub fn times(&self) -> &[f64] {
        &self.t
    }
    /// The N + 1 noise levels σ̃_i.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigma
    }
}

/// Largest schedule file read (a list of times is a few KB).
const MAX_SCHEDULE_BYTES: u64 = 1 << 20;

/// Read a regular file of at most [`MAX_SCHEDULE_BYTES`], bounding the bytes
/// actually read (not the metadata length, which is 0 for devices).
fn read_small_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::invalid(
            "schedule file",
            path.display(),
            "a regular file",
        ));
    }
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = Vec::new();
    f.take(MAX_SCHEDULE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    if buf.len() as u64 > MAX_SCHEDULE_BYTES {
        return Err(Error::invalid(
            "schedule file",
            path.display(),
            format!("at most {MAX_SCHEDULE_BYTES} bytes"),
        ));
    }
    String::from_utf8(buf)
        .map_err(|_| Error::invalid("schedule file", path.display(), "UTF-8 text"))
}
