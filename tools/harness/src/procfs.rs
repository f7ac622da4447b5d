//! What a process has used, read from its own counters in `/proc`: CPU time
//! from `/proc/<pid>/stat`, resident memory from `/proc/<pid>/status`. The
//! chaos experiments and the benchmark read the services, the emulator and
//! Postgres through these; nothing here changes a process.

/// CPU seconds (user + system) of process `pid`, from `/proc/<pid>/stat`.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields = stat_fields(&stat)?;
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// The fields of a `/proc/<pid>/stat` line after the command name, which may
/// hold spaces and parentheses: they are counted after its last `)`.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(stat.rsplit_once(')')?.1.split_whitespace().collect())
}

/// The unit of those counters: Linux reports them in USER_HZ, fixed at 100
/// ticks a second by its ABI whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the most it was ever resident (its high-water mark).
    pub peak: u64,
}

/// `VmRSS` and `VmHWM` of process `pid`, from `/proc/<pid>/status`.
pub fn process_memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    Some(Memory {
        rss: kib("VmRSS:")?,
        peak: kib("VmHWM:")?,
    })
}

/// The processes whose parent is `pid` (a Postgres server's backends).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // After the name: ppid is field 4 of the line.
                    stat_fields(&stat)?.get(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// CPU seconds of `pid` and of its children that are alive now: a Postgres
/// server with its backends and helpers. Children that exited in between are
/// not counted (their time moves to the parent's `cutime`, which is not
/// added: it would count them twice against a reading taken while they ran).
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let own = process_cpu_seconds(pid)?;
    Some(
        own + children_of(pid)
            .into_iter()
            .filter_map(process_cpu_seconds)
            .sum::<f64>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_this_process_burns_shows_in_its_counters() {
        let pid = std::process::id();
        let first = process_cpu_seconds(pid).expect("readable on Linux");
        // Burn CPU until the counter moves (it ticks 100 times a second), for
        // at most five seconds of wall time.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let mut now = first;
        while now <= first && started.elapsed() < std::time::Duration::from_secs(5) {
            for i in 0..1_000_000u64 {
                x = x.wrapping_add(std::hint::black_box(i * i));
            }
            now = process_cpu_seconds(pid).expect("readable on Linux");
        }
        assert!(x > 0);
        assert!(now > first, "the counter did not move: {first} then {now}");
        assert!(now - first < 10.0, "{first} then {now}: not seconds");
    }

    #[test]
    fn this_process_is_resident_and_its_peak_is_at_least_what_it_holds_now() {
        let memory = process_memory(std::process::id()).expect("readable on Linux");
        assert!(memory.rss > 0);
        assert!(memory.peak >= memory.rss, "{memory:?}");
    }

    #[test]
    fn a_child_process_is_found_under_its_parent() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let found = children_of(std::process::id()).contains(&child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found);
    }
}
