//! Tools of the hostile suite: real plugins turned into attacks by adding
//! sections to their component binaries, and a way to run the binary and
//! measure how long it took and how much memory it held.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn leb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn section(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![id];
    leb(payload.len() as u64, &mut s);
    s.extend_from_slice(payload);
    s
}

/// Top-level sections of a component: (id, payload).
fn sections(component: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut i = 8;
    while i < component.len() {
        let id = component[i];
        i += 1;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = component[i];
            i += 1;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        out.push((id, &component[i..i + len]));
        i += len;
    }
    out
}

/// Core modules defined at the top level of a component (the index the
/// next one gets). wit-component's output defines them only by module
/// sections; a wrong count makes the component invalid, which the tests
/// would see as the wrong refusal.
fn core_modules(component: &[u8]) -> u64 {
    sections(component)
        .iter()
        .filter(|(id, _)| *id == 1)
        .count() as u64
}

/// `component` with a core module appended (and, if `instances` > 0,
/// instantiated that many times when the component is).
pub fn with_core_module(component: &[u8], module_wat: &str, instances: u32) -> Vec<u8> {
    let module = wat::parse_str(module_wat).expect("module WAT");
    let index = core_modules(component);
    let mut out = component.to_vec();
    out.extend(section(1, &module));
    if instances > 0 {
        let mut payload = Vec::new();
        leb(u64::from(instances), &mut payload);
        for _ in 0..instances {
            payload.push(0x00);
            leb(index, &mut payload);
            payload.push(0x00); // no instantiation arguments
        }
        out.extend(section(2, &payload));
    }
    out
}

/// `component` plus `count` core instances, each with a linear memory of
/// `mib` MiB whose every page is written at instantiation (so the memory is
/// really committed, as an attacker's would be).
pub fn with_extra_memories(component: &[u8], count: u32, mib: u32) -> Vec<u8> {
    let pages = mib * 16;
    let bytes = u64::from(mib) << 20;
    let wat = format!(
        "(module (memory {pages}) (func $touch (memory.fill (i32.const 0) (i32.const 1) (i32.const {bytes}))) (start $touch))"
    );
    with_core_module(component, &wat, count)
}

/// `component` plus an uninstantiated module of `funcs` functions of
/// `ops` arithmetic steps each: valid, pointless, and slow to compile.
pub fn with_slow_module(component: &[u8], funcs: usize, ops: usize) -> Vec<u8> {
    let body = "local.get 0 i32.const 7 i32.mul i32.const 3 i32.xor local.set 0 ".repeat(ops);
    let mut wat = String::from("(module ");
    for _ in 0..funcs {
        wat.push_str(&format!(
            "(func (param i32) (result i32) {body} local.get 0) "
        ));
    }
    wat.push(')');
    with_core_module(component, &wat, 0)
}

/// `component` plus a custom section of `bytes` bytes.
pub fn with_padding(component: &[u8], bytes: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    leb(7, &mut payload);
    payload.extend_from_slice(b"padding");
    payload.resize(payload.len() + bytes, 0);
    let mut out = component.to_vec();
    out.extend(section(0, &payload));
    out
}

/// A finished process: its output, how long it ran and its peak RSS.
pub struct Measured {
    /// Exit status.
    pub status: std::process::ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
    /// Start to exit.
    pub wall: Duration,
    /// Peak resident set size of the process, in MiB: its `VmHWM`, read
    /// every 5 ms while it runs (`ru_maxrss` would count the test binary
    /// it was forked from).
    pub max_rss_mib: f64,
}

/// Run `cmd` to completion, killing it after `limit`; its output, wall
/// time and peak RSS.
pub fn run_measured(mut cmd: Command, limit: Duration) -> Measured {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let watching = watching.clone();
        std::thread::spawn(move || {
            let mut peak_kib = 0u64;
            let path = format!("/proc/{pid}/status");
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                let hwm = std::fs::read_to_string(&path).ok().and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                });
                if let Some(kib) = hwm {
                    peak_kib = peak_kib.max(kib);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak_kib
        })
    };
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            // SAFETY: kill on the child's pid, not yet reaped (waitpid
            // has not returned, or this thread would have been told).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut status: libc::c_int = 0;
    // SAFETY: waiting for our own child with a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid failed");
    let wall = started.elapsed();
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak_kib = watcher.join().unwrap();
    let _ = tx.send(());
    killer.join().unwrap();
    // The child is reaped; std must not wait for it again.
    std::mem::forget(child);
    use std::os::unix::process::ExitStatusExt;
    Measured {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
        wall,
        max_rss_mib: peak_kib as f64 / 1024.0,
    }
}
