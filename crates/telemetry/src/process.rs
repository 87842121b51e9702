//! The daemon's own process figures, under the standard Prometheus client names
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), read from `/proc` at
//! each scrape. Parsing is pure and tested on sample text; only [`read`] touches the files.

use prometheus_client::encoding::DescriptorEncoder;

use crate::expose;

/// One reading of the process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: u64,
    /// Seconds since the Unix epoch.
    pub start_time_seconds: f64,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// The figures of `/proc/self/stat` (fields after the command name, which may contain
/// spaces and parentheses, hence the split at the last `)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub threads: u64,
    pub start_ticks: u64,
    pub vsize: u64,
    pub rss_pages: u64,
}

pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state) of proc(5).
    let n = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some(Stat {
        utime_ticks: n(11)?,
        stime_ticks: n(12)?,
        threads: n(17)?,
        start_ticks: n(19)?,
        vsize: n(20)?,
        rss_pages: n(21)?,
    })
}

/// `btime` of `/proc/stat`: the boot time, seconds since the epoch.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft "Max open files" of `/proc/self/limits`.
pub fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn sample(stat: &Stat, ticks_per_second: u64, page_size: u64, boot_time: u64) -> ProcessSample {
    let tps = ticks_per_second.max(1) as f64;
    ProcessSample {
        cpu_seconds: (stat.utime_ticks + stat.stime_ticks) as f64 / tps,
        resident_bytes: stat.rss_pages * page_size,
        virtual_bytes: stat.vsize,
        threads: stat.threads,
        start_time_seconds: boot_time as f64 + stat.start_ticks as f64 / tps,
        open_fds: None,
        max_fds: None,
    }
}

/// Reads this process's figures (`None` where `/proc` is not there).
pub fn read() -> Option<ProcessSample> {
    let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_boot_time(&t))
        .unwrap_or(0);
    let mut s = sample(
        &stat,
        rustix::param::clock_ticks_per_second(),
        rustix::param::page_size() as u64,
        boot,
    );
    s.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    s.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| parse_max_fds(&t));
    Some(s)
}

pub(crate) fn encode(enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let Some(s) = read() else {
        return Ok(());
    };
    let none = Vec::new;
    expose::counters_f64(
        enc,
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        s.cpu_seconds,
    )?;
    let gauges: [(&str, &str, Option<f64>); 6] = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            Some(s.resident_bytes as f64),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            Some(s.virtual_bytes as f64),
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            Some(s.start_time_seconds),
        ),
        (
            "process_threads",
            "Number of OS threads in the process",
            Some(s.threads as f64),
        ),
        (
            "process_open_fds",
            "Number of open file descriptors",
            s.open_fds.map(|v| v as f64),
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors",
            s.max_fds.map(|v| v as f64),
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(v) = value {
            expose::gauges(enc, name, help, &[(none(), v)])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (wisp (serve) x) S 1 4242 4242 0 -1 4194560 9181 0 3 0 250 130 0 0 20 0 17 0 5000 1234567168 2048 18446744073709551615 1 1 0 0 0 0 0 4096 17475 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_fields_after_a_name_with_parentheses() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(s.utime_ticks, 250);
        assert_eq!(s.stime_ticks, 130);
        assert_eq!(s.threads, 17);
        assert_eq!(s.start_ticks, 5000);
        assert_eq!(s.vsize, 1_234_567_168);
        assert_eq!(s.rss_pages, 2048);
        let p = sample(&s, 100, 4096, 1_700_000_000);
        assert_eq!(p.cpu_seconds, 3.8);
        assert_eq!(p.resident_bytes, 2048 * 4096);
        assert_eq!(p.start_time_seconds, 1_700_000_050.0);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn boot_time_and_fd_limit() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
    }

    #[test]
    fn this_process_is_readable() {
        let s = read().expect("/proc is mounted");
        assert!(s.resident_bytes > 0);
        assert!(s.threads >= 1);
        assert!(s.open_fds.unwrap_or(0) >= 3);
    }
}
