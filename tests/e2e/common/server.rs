//! A small HTTP/1.1 server for tests, with byte-exact control over how a
//! response body is split into chunks and when each chunk leaves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Sent as separate chunked-encoding chunks, flushed one by one.
    pub chunks: Vec<Vec<u8>>,
    /// Pause before each chunk.
    pub delay: Duration,
    /// Close the connection after this many chunks, without the terminator.
    pub cut_after: Option<usize>,
}

impl Canned {
    pub fn new(status: u16, content_type: &str, chunks: Vec<Vec<u8>>) -> Self {
        Canned {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            chunks,
            delay: Duration::ZERO,
            cut_after: None,
        }
    }
}

type Responder = Arc<dyn Fn(&Received) -> Canned + Send + Sync>;

pub struct TestServer {
    pub base: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl TestServer {
    pub async fn start(responder: impl Fn(&Received) -> Canned + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let responder: Responder = Arc::new(responder);
        let rec = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (responder, rec) = (responder.clone(), rec.clone());
                tokio::spawn(async move {
                    let _ = serve_conn(sock, responder, rec).await;
                });
            }
        });
        TestServer {
            base: format!("http://{addr}"),
            received,
        }
    }

    pub fn last(&self) -> Received {
        self.received
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
}

async fn serve_conn(
    mut sock: TcpStream,
    responder: Responder,
    rec: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut tmp = [0u8; 8192];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let path = first.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut tmp = [0u8; 65536];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let req = Received {
            method,
            path,
            headers,
            body,
        };
        let canned = responder(&req);
        rec.lock().unwrap().push(req);

        let mut out = format!("HTTP/1.1 {} X\r\n", canned.status);
        for (n, v) in &canned.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("Transfer-Encoding: chunked\r\n\r\n");
        sock.write_all(out.as_bytes()).await?;
        sock.flush().await?;
        for (i, chunk) in canned.chunks.iter().enumerate() {
            if canned.cut_after == Some(i) {
                // Abrupt close mid-body: no terminating chunk.
                return Ok(());
            }
            if !canned.delay.is_zero() {
                tokio::time::sleep(canned.delay).await;
            }
            if chunk.is_empty() {
                continue;
            }
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(chunk);
            frame.extend_from_slice(b"\r\n");
            sock.write_all(&frame).await?;
            sock.flush().await?;
        }
        if canned.cut_after.is_some_and(|c| c >= canned.chunks.len()) {
            return Ok(());
        }
        sock.write_all(b"0\r\n\r\n").await?;
        sock.flush().await?;
    }
}
