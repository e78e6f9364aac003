//! Owns: what Linux says about a running daemon: fields of /proc/PID/status
//! (VmRSS, VmHWM, in KiB) and its CPU time from /proc/PID/stat.
//!
//! Must not: measure anything but the process it is given.

/// A `kB` field of /proc/PID/status, e.g. `VmHWM` (peak RSS) or `VmRSS`.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds (user + system) the process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_seconds(&stat)
}

fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks; Linux reports USER_HZ = 100 to user space.
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_of_this_process() {
        let pid = std::process::id();
        // RSS first: the peak read after it is at least as high.
        let rss = status_kib(pid, "VmRSS").unwrap();
        let hwm = status_kib(pid, "VmHWM").unwrap();
        assert!(hwm >= rss && rss > 0, "hwm {hwm} rss {rss}");
        assert!(cpu_seconds(pid).is_some());
    }

    #[test]
    fn parses_the_text_linux_writes() {
        let status = "Name:\tpuente\nVmHWM:\t  163840 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(163_840));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(40_960));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        let stat = "42 (puente run) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
    }
}
