//! The demo as `make demo` runs it (`e2e/with-cluster.sh scripts/demo-inner.sh`, with the
//! operator binary of this build) stops cleanly on SIGTERM to its top process: the cluster
//! script passes the signal on at once instead of waiting for the demo to end, and the demo's
//! clean-up no longer waits for its idle `sleep 3600`. Everything it started (cluster
//! harness, registry, operator) ends with it (issue 16; oc-compat.md 3.7).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn the_demo_stops_on_sigterm_to_its_top_process() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut demo = Command::new(format!("{root}/e2e/with-cluster.sh"))
        .arg("scripts/demo-inner.sh")
        .current_dir(root)
        .env("DEMO_BIN", env!("CARGO_BIN_EXE_imagestream-operator"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // its own process group, to find whatever it leaves behind
        .process_group(0)
        .spawn()
        .expect("run the demo");
    let pid = demo.id() as libc::pid_t;
    let stdout = demo.stdout.take().expect("stdout");
    let (lines, read) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match read.recv_timeout(left) {
            Ok(line) if line.contains("== running") => break,
            Ok(line) => seen.push(line),
            Err(e) => {
                // SAFETY: signals the demo's own process group
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                panic!("the demo did not reach `running` ({e}): {seen:#?}");
            }
        }
    }

    let signalled = Instant::now();
    // SAFETY: signals the process this test started
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = loop {
        if let Some(status) = demo.try_wait().expect("wait for the demo") {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(30) {
            // SAFETY: as above
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            panic!("the demo did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = signalled.elapsed();
    assert!(status.success(), "the demo ended with {status}");
    // the harness, the registry and the operator are gone too (a moment for the last exits)
    let gone = Instant::now() + Duration::from_secs(5);
    // SAFETY: signal 0 only asks whether the group still has processes
    while unsafe { libc::kill(-pid, 0) } == 0 {
        assert!(
            Instant::now() < gone,
            "processes of the demo are left after it ended: {:#?}",
            group_members(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("the demo stopped {took:?} after SIGTERM");
}

/// `pid command line` of each process in process group `pgid` (from /proc), to name what lingers.
fn group_members(pgid: libc::pid_t) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<libc::pid_t>().ok()) != Some(pgid) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let (state, parent) = (fields[0], fields[1]);
        found.push(format!(
            "{pid} (parent {parent}, {state}) {}",
            cmdline.trim()
        ));
    }
    found
}
