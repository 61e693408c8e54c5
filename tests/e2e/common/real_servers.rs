//! Real third-party servers on loopback (`tests/servers/`): a Truss model
//! server (Baseten's own serving code) and llmock. `setup.sh` installs them
//! under `target/servers/` once (CI runs it in `.ci/run`; here a test runs
//! it if needed).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn servers_dir() -> PathBuf {
    repo().join("target/servers")
}

/// Install the servers (idempotent, about 1 s once installed).
fn setup() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("tests/servers/setup.sh"))
            .output()
            .map_err(|e| format!("cannot run tests/servers/setup.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "tests/servers/setup.sh failed (python3 with venv and PyPI are needed):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, stopped (TERM, then KILL) when dropped.
pub struct RealServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl RealServer {
    fn start(mut cmd: Command, port: u16, ready_path: &str) -> RealServer {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server");
        let server = RealServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let url = format!("{}{ready_path}", server.base);
        let started = Instant::now();
        loop {
            if get_ok(port, ready_path) {
                return server;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{url} not ready within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether `GET path` on the port answers 200.
fn get_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Truss model server with the synthetic model of
/// `tests/servers/truss` (its request fields are in that README); it logs
/// its own per-piece timestamps to `timing_log` when given.
pub fn truss(timing_log: Option<&std::path::Path>) -> RealServer {
    setup();
    let port = free_port();
    let dir = servers_dir();
    let mut cmd = Command::new(dir.join("venv-truss-server/bin/python"));
    cmd.arg(dir.join("truss-app/run_local.py"))
        .env("INFERENCE_SERVER_PORT", port.to_string())
        .env("DISABLE_JSON_LOGGING", "1");
    if let Some(log) = timing_log {
        cmd.env("TRUSS_TIMING_LOG", log);
    }
    RealServer::start(cmd, port, "/v1/models/model")
}

/// llmock with `args` (latency, chaos options).
pub fn llmock(args: &[&str]) -> RealServer {
    setup();
    let port = free_port();
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("tests/servers/llmock.sh"))
        .arg(port.to_string())
        .args(args);
    RealServer::start(cmd, port, "/health")
}

/// moto's S3 server checking SigV4 signatures, with `bucket` made and a
/// key allowed to write it: (server, key id, secret).
pub fn moto_s3(bucket: &str) -> (RealServer, String, String) {
    setup();
    let port = free_port();
    let dir = servers_dir();
    let mut cmd = Command::new(dir.join("venv-moto/bin/moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        // The helper's four IAM calls run unauthenticated; every request
        // after them must be signed with a key moto issued.
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "4");
    let server = RealServer::start(cmd, port, "/moto-api/");
    let out = moto_helper(&["setup", &server.base, bucket]);
    let keys: serde_json::Value = serde_json::from_str(&out).expect("moto_s3.py setup JSON");
    let id = keys["key_id"].as_str().unwrap().to_string();
    let secret = keys["secret"].as_str().unwrap().to_string();
    (server, id, secret)
}

/// Object names under `prefix` of `bucket`, with the SHA-256 of their bytes
/// (read back through boto3, signed with the key).
pub fn moto_s3_objects(
    server: &RealServer,
    id: &str,
    secret: &str,
    bucket: &str,
    prefix: &str,
) -> std::collections::BTreeMap<String, String> {
    let out = moto_helper(&["list", &server.base, id, secret, bucket, prefix]);
    serde_json::from_str(&out).expect("moto_s3.py list JSON")
}

fn moto_helper(args: &[&str]) -> String {
    let out = Command::new(servers_dir().join("venv-moto/bin/python"))
        .arg(repo().join("tests/servers/moto_s3.py"))
        .args(args)
        .output()
        .expect("run moto_s3.py");
    assert!(
        out.status.success(),
        "moto_s3.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
