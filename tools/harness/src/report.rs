//! What the tools' reports are made of, written once for chaos and bench.
//!
//! Both tools leave a timestamped folder of Markdown, JSON and SVG behind
//! them, describe the machine they ran on, and take settings as `KEY=VALUE`.
//! Kept here, the two reports name their folders, draw their tables and
//! record their machines the same way:
//!
//! - [`run_dir`] and [`timestamp`]: `<results>/<UTC time>[-<name>]`;
//! - [`write_json`]: pretty JSON into a file;
//! - [`Table`]: a Markdown table, `|` in cells escaped;
//! - [`Machine`] and [`load_average`]: what the figures were measured on, and
//!   how busy it was (a busy machine makes noisy figures);
//! - [`key_value`] and [`key_values`]: settings on a command line and in a
//!   report.

use std::fmt;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A run's time as its folder is named: `20250102T030405Z`, UTC, sorting in
/// time order.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Where a named run's files go: `<results>/<UTC time>-<name>`.
pub fn run_dir(results: &Path, name: &str, started: DateTime<Utc>) -> PathBuf {
    results.join(format!("{}-{name}", timestamp(started)))
}

/// Writes `value` into `path` as pretty JSON.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))
}

/// A Markdown table: a header, the alignment row, then the rows as added.
///
/// Columns are left-aligned unless [`Table::right_aligned`] says otherwise
/// (numbers). A `|` in a cell is escaped so it cannot split the row.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        Table {
            right: vec![false; header.len()],
            header,
            rows: Vec::new(),
        }
    }

    /// Right-aligns the columns in `columns` (counted from 0).
    pub fn right_aligned(mut self, columns: impl RangeBounds<usize>) -> Table {
        for (i, right) in self.right.iter_mut().enumerate() {
            *right |= columns.contains(&i);
        }
        self
    }

    /// Adds a row, one cell per column.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Table {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }
}

/// One row: `| a | b |`, an empty cell as `| |`.
fn write_row(f: &mut fmt::Formatter<'_>, cells: &[String]) -> fmt::Result {
    f.write_str("|")?;
    for cell in cells {
        if cell.is_empty() {
            f.write_str(" |")?;
        } else {
            write!(f, " {} |", cell.replace('|', "\\|"))?;
        }
    }
    f.write_str("\n")
}

impl fmt::Display for Table {
    /// The table, each line ending in a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_row(f, &self.header)?;
        f.write_str("|")?;
        for right in &self.right {
            f.write_str(if *right { "---:|" } else { "---|" })?;
        }
        f.write_str("\n")?;
        for row in &self.rows {
            write_row(f, row)?;
        }
        Ok(())
    }
}

/// The machine a run was on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    /// Reads `/proc`; what it cannot read stays empty or zero.
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, name: &str| -> String {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let memory_kib: f64 = field(&meminfo, "MemTotal")
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap_or(0.0);
        Machine {
            cpu: field(&cpuinfo, "model name"),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    }
}

impl fmt::Display for Machine {
    /// `2 × <model name>, 7.8 GiB, Linux 6.1.0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} × {}, {:.1} GiB, Linux {}",
            self.cores, self.cpu, self.memory_gib, self.kernel
        )
    }
}

/// The 1, 5 and 15 minute load averages: how busy the machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `KEY=VALUE` (a clap `value_parser`): the key must not be empty,
/// the value may be, and may hold `=` itself.
pub fn key_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("'{raw}' is not KEY=VALUE"))
}

/// Settings as a report shows them: `A=1 B=2`.
pub fn key_values(settings: &[(String, String)]) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_run_folder_is_named_for_its_utc_start_then_its_name() {
        let started = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(timestamp(started), "20250102T030405Z");
        assert_eq!(
            run_dir(Path::new("results/chaos"), "invoice-down", started),
            Path::new("results/chaos/20250102T030405Z-invoice-down")
        );
    }

    #[test]
    fn a_table_has_its_alignment_row_under_the_header() {
        let mut table = Table::new(["name", "count", "p50", "note"]).right_aligned(1..3);
        table.row(["a", "1", "2.0", "x"]);
        assert_eq!(
            table.to_string(),
            "| name | count | p50 | note |\n|---|---:|---:|---|\n| a | 1 | 2.0 | x |\n"
        );
    }

    #[test]
    fn a_pipe_in_a_cell_is_escaped_and_an_empty_cell_stays_one_space() {
        let mut table = Table::new(["", "value"]);
        table.row(["a | b", "c|d"]).row(["", "e"]);
        assert_eq!(
            table.to_string(),
            "| | value |\n|---|---|\n| a \\| b | c\\|d |\n| | e |\n"
        );
    }

    #[test]
    fn a_table_can_right_align_every_column_from_one_on() {
        let table = Table::new(["hop", "count", "max"]).right_aligned(1..);
        assert_eq!(
            table.to_string(),
            "| hop | count | max |\n|---|---:|---:|\n"
        );
    }

    #[test]
    fn key_value_splits_at_the_first_equals_sign() {
        assert_eq!(key_value("A=1"), Ok(("A".into(), "1".into())));
        assert_eq!(key_value("A="), Ok(("A".into(), String::new())));
        assert_eq!(key_value("A=b=c"), Ok(("A".into(), "b=c".into())));
    }

    #[test]
    fn key_value_refuses_a_missing_equals_sign_or_an_empty_key() {
        assert_eq!(key_value("A"), Err("'A' is not KEY=VALUE".into()));
        assert_eq!(key_value("=1"), Err("'=1' is not KEY=VALUE".into()));
        assert_eq!(key_value(""), Err("'' is not KEY=VALUE".into()));
    }

    #[test]
    fn settings_read_as_they_are_given() {
        let settings = [("A".to_string(), "1".to_string()), ("B".into(), "".into())];
        assert_eq!(key_values(&settings), "A=1 B=");
    }

    #[test]
    fn the_machine_reads_as_cores_cpu_memory_and_kernel() {
        let machine = Machine {
            cpu: "CPU".into(),
            cores: 2,
            memory_gib: 7.84,
            kernel: "6.1".into(),
        };
        assert_eq!(machine.to_string(), "2 × CPU, 7.8 GiB, Linux 6.1");
    }
}
