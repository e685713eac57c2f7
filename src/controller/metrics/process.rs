//! The process's CPU time, memory, file descriptors, threads and start time, read from
//! `/proc/self` at each scrape under the standard `process_*` names (as Prometheus' own
//! clients export them). Parsing is separate from reading; off Linux, or when `/proc` cannot be
//! read, the families are left out rather than reported as zero.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of the times in `/proc/<pid>/stat` (USER_HZ, 100 on every Linux
/// architecture's user ABI).
const USER_HZ: f64 = 100.0;

/// What one scrape reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Sample {
    pub cpu_seconds: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub threads: Option<i64>,
    pub resident_bytes: Option<i64>,
    pub virtual_bytes: Option<i64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
}

/// Fields of `/proc/self/stat` after the command name (which may hold spaces and parentheses,
/// so the split is at the last `)`): state is the first, utime the 12th, stime the 13th,
/// num_threads the 18th, starttime the 20th.
fn parse_stat(stat: &str) -> Option<(f64, i64, f64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let ticks = number(11)? + number(12)?;
    let threads = i64::try_from(number(17)?).ok()?;
    let started = number(19)?;
    Some((ticks as f64 / USER_HZ, threads, started as f64 / USER_HZ))
}

/// `VmRSS` and `VmSize` of `/proc/self/status`, in bytes.
fn parse_status(status: &str) -> (Option<i64>, Option<i64>) {
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            .map(|k| k.saturating_mul(1024))
    };
    (kib("VmRSS:"), kib("VmSize:"))
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn parse_max_fds(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(i64::MAX),
        n => n.parse().ok(),
    }
}

/// The boot time (`btime`) of `/proc/stat`, in seconds since the epoch.
fn parse_boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s as f64)
}

/// Reads `/proc` now.
fn read() -> Sample {
    let text = |path: &str| std::fs::read_to_string(path).ok();
    let stat = text("/proc/self/stat").as_deref().and_then(parse_stat);
    let (resident_bytes, virtual_bytes) = text("/proc/self/status")
        .as_deref()
        .map_or((None, None), parse_status);
    let boot = text("/proc/stat").as_deref().and_then(parse_boot_time);
    Sample {
        cpu_seconds: stat.map(|s| s.0),
        threads: stat.map(|s| s.1),
        start_time_seconds: stat.zip(boot).map(|(s, boot)| boot + s.2),
        resident_bytes,
        virtual_bytes,
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| i64::try_from(d.count()).unwrap_or(i64::MAX)),
        max_fds: text("/proc/self/limits").as_deref().and_then(parse_max_fds),
    }
}

/// Encodes a [`Sample`] read at each scrape.
#[derive(Debug)]
pub(super) struct Collector;

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sample = read();
        if let Some(seconds) = sample.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let gauges: [(&str, &str, Option<f64>); 6] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                sample.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                sample.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                sample.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                sample.max_fds.map(|v| v as f64),
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                sample.threads.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                sample.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(metric)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        // a command name with a space and a parenthesis
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
                    250 130 0 0 20 0 9 0 5000 123456789 4000 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((3.8, 9, 50.0)));
        assert_eq!(parse_stat("garbage"), None);
        let status = "Name:\timagestream-op\nVmSize:\t  120000 kB\nVmRSS:\t   31000 kB\n";
        assert_eq!(
            parse_status(status),
            (Some(31000 * 1024), Some(120000 * 1024))
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(parse_max_fds(limits), Some(1_048_576));
        assert_eq!(parse_boot_time("cpu 1 2\nbtime 1700000000\n"), Some(1.7e9));
    }

    #[test]
    fn this_process_reads_as_running() {
        let sample = read();
        assert!(sample.resident_bytes.is_some_and(|b| b > 0), "{sample:?}");
        assert!(sample.open_fds.is_some_and(|n| n > 0), "{sample:?}");
        assert!(sample.threads.is_some_and(|n| n >= 1), "{sample:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let started = sample.start_time_seconds.unwrap_or_default();
        assert!(started > 1e9 && started <= now + 1.0, "{sample:?}");
    }
}
