//! Sampler specs `name:key=value,key=value`: parsing and typed access.
//!
//! Each sampler takes the keys it knows with [`Params::f64`],
//! [`Params::usize`], [`Params::schedule`] and [`Params::noise`];
//! [`Params::finish`] rejects any key left over. A token without `=` after
//! `schedule=` continues its list of times, so `ddim:schedule=0.9,0.5,0.2`
//! is one schedule.

use super::schedule::Schedule;
use super::Noise;
use crate::error::{Error, Result};

/// The `key=value` parameters of a sampler spec.
#[derive(Debug)]
pub struct Params {
    pub name: String,
    values: Vec<(String, String)>,
}

impl Params {
    /// Split `name:key=value,key=value`.
    pub fn parse(spec: &str) -> Result<Self> {
        let (name, rest) = match spec.split_once(':') {
            Some((n, r)) => (n.trim(), r),
            None => (spec.trim(), ""),
        };
        let mut values: Vec<(String, String)> = Vec::new();
        for kv in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some((k, v)) => {
                    let k = k.trim().to_string();
                    if values.iter().any(|(key, _)| *key == k) {
                        return Err(Error::invalid(
                            "sampler parameter",
                            kv,
                            format!("each key once in `{spec}` ({k} is given twice)"),
                        ));
                    }
                    values.push((k, v.trim().to_string()));
                }
                None => match values.last_mut() {
                    Some((k, v)) if k == "schedule" => {
                        v.push(',');
                        v.push_str(kv);
                    }
                    _ => {
                        return Err(Error::invalid(
                            "sampler parameter",
                            kv,
                            format!("key=value in `{spec}`"),
                        ))
                    }
                },
            }
        }
        Ok(Params {
            name: name.to_string(),
            values,
        })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let i = self.values.iter().position(|(k, _)| k == key)?;
        Some(self.values.remove(i).1)
    }

    /// Whether the spec gives `key` (without taking it).
    pub fn has(&self, key: &str) -> bool {
        self.values.iter().any(|(k, _)| k == key)
    }

    /// A finite real parameter, `default` if absent.
    pub fn f64(&mut self, key: &str, default: f64) -> Result<f64> {
        self.take(key)
            .map_or(Ok(default), |v| Error::parse_finite(key, v))
    }

    /// A non-negative integer parameter at most
    /// [`crate::limits::MAX_SAMPLER_STEPS`], `default` if absent.
    pub fn usize(&mut self, key: &str, default: usize) -> Result<usize> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => {
                let max = crate::limits::MAX_SAMPLER_STEPS;
                match v.parse::<usize>() {
                    Ok(k) if k <= max => Ok(k),
                    _ => Err(Error::invalid(
                        key,
                        v,
                        format!("a non-negative integer <= {max}"),
                    )),
                }
            }
        }
    }

    /// `schedule=…` ([`Schedule::parse`]), `default` if absent.
    pub fn schedule(&mut self, default: Schedule) -> Result<Schedule> {
        match self.take("schedule") {
            None => Ok(default),
            Some(v) => Schedule::parse(&v),
        }
    }

    /// `noise=steps|brownian`, per-step streams if absent.
    pub fn noise(&mut self) -> Result<Noise> {
        match self.take("noise").as_deref() {
            None | Some("steps") => Ok(Noise::Steps),
            Some("brownian") => Ok(Noise::Brownian),
            Some(other) => Err(Error::invalid("noise", other, "steps or brownian")),
        }
    }

    /// Error if any parameter was not used by the sampler; `takes` is the
    /// sampler's description of its parameters (its registry help).
    pub fn finish(self, takes: &str) -> Result<()> {
        match self.values.first() {
            None => Ok(()),
            Some((k, v)) => Err(Error::invalid(
                format!("parameter of sampler {}", self.name),
                format!("{k}={v}"),
                format!("a parameter this sampler takes ({takes})"),
            )),
        }
    }
}

/// Builds the spec string `name:steps=N,key=value,…` that [`Params::parse`]
/// reads back; keys equal to their default are left out.
pub struct SpecWriter {
    out: String,
}

impl SpecWriter {
    pub(crate) fn new(name: &str, steps: usize) -> Self {
        SpecWriter {
            out: format!("{name}:steps={steps}"),
        }
    }

    /// Add `key=value` unless `value == default`.
    pub(crate) fn f64(mut self, key: &str, value: f64, default: f64) -> Self {
        if value != default {
            self.out.push_str(&format!(",{key}={value:?}"));
        }
        self
    }

    pub(crate) fn usize(mut self, key: &str, value: usize, default: usize) -> Self {
        if value != default {
            self.out.push_str(&format!(",{key}={value}"));
        }
        self
    }

    pub(crate) fn schedule(mut self, value: &Schedule, default: &Schedule) -> Self {
        if value != default {
            self.out.push_str(&format!(",schedule={}", value.spec()));
        }
        self
    }

    /// Add `schedule=…` even at its default.
    pub(crate) fn schedule_always(mut self, value: &Schedule) -> Self {
        self.out.push_str(&format!(",schedule={}", value.spec()));
        self
    }

    pub(crate) fn noise(mut self, value: Noise) -> Self {
        if value == Noise::Brownian {
            self.out.push_str(",noise=brownian");
        }
        self
    }

    pub(crate) fn done(self) -> String {
        self.out
    }
}
