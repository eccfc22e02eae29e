//! Plain tables written as Markdown and CSV.

use std::path::Path;

use crate::error::Result;
use crate::fsutil::write_atomic;

/// A table of strings with a header row.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and no rows.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// GitHub-flavoured Markdown, columns padded for reading as text.
    pub fn to_markdown(&self) -> String {
        let ncol = self.headers.len();
        let width: Vec<usize> = (0..ncol)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .chain(std::iter::once(&self.headers[c]))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(3)
                    .max(3)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = (0..ncol)
                .map(|c| {
                    let s = cells.get(c).map(String::as_str).unwrap_or("");
                    format!("{s:<w$}", w = width[c])
                })
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let mut out = line(&self.headers);
        let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }

    /// CSV (RFC 4180 quoting where needed).
    pub fn to_csv(&self) -> String {
        let quote = |s: &String| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.clone()
            }
        };
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            out.push_str(&r.iter().map(quote).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }

    /// Write the Markdown table to `path` atomically.
    pub fn write_markdown(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_markdown().as_bytes())
    }

    /// Write the CSV to `path` atomically.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_csv().as_bytes())
    }
}
