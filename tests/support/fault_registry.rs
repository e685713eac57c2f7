//! A small HTTP/1.1 server that misbehaves on purpose, for what a real registry cannot do:
//! 429 with `Retry-After`, slow headers or bodies, wrong digests, oversized or endless bodies,
//! redirect loops, redirects to forbidden addresses, malformed JSON, odd media types, 5xx.
//!
//! ```ignore
//! let server = FaultServer::start(|req: &Seen| match req.path.as_str() {
//!     "/v2/a/manifests/x" => Reply::new(429).header("Retry-After", "1"),
//!     _ => Reply::new(404),
//! });
//! // … client requests `server.addr()` (plain HTTP, so insecure clients) …
//! assert_eq!(server.count("/v2/a/manifests/x"), 3);
//! ```
//!
//! std only: one thread per connection, one request per connection (`Connection: close`).
//! A TLS ClientHello (an HTTPS attempt) gets `400 Bad Request` in plain HTTP and is logged
//! with method `TLS`, as Go's server answers it — so an insecure client falls back to HTTP.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: Option<String>,
    /// Header names lower case.
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A request and what it was answered with. Logged when the request has been read (before
/// any of the answer is written, so a client never sees an answer the log does not show);
/// `done`, `body_written` and `complete` are filled in when the answer is over.
#[derive(Clone, Debug)]
pub struct Served {
    pub request: Seen,
    pub status: u16,
    /// The answer is over (written, or the client went away).
    pub done: bool,
    /// Body bytes written before the body ended or the client went away.
    pub body_written: usize,
    /// Whether the whole planned body went out.
    pub complete: bool,
}

#[derive(Clone, Debug)]
enum Body {
    Full(Vec<u8>),
    /// `count` chunks of `chunk` in chunked encoding, `pause` between them.
    Chunked {
        chunk: Vec<u8>,
        count: usize,
        pause: Duration,
    },
}

/// The answer to one request.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    delay: Duration,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Full(Vec::new()),
            delay: Duration::ZERO,
        }
    }
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(200)
            .header("Content-Type", content_type)
            .body(body)
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    /// A body sent with its `Content-Length` (unless a `Content-Length` header was set).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = Body::Full(body.into());
        self
    }
    /// A chunked body (no `Content-Length`) of `count` copies of `chunk`.
    pub fn chunked(mut self, chunk: impl Into<Vec<u8>>, count: usize, pause: Duration) -> Reply {
        self.body = Body::Chunked {
            chunk: chunk.into(),
            count,
            pause,
        };
        self
    }
    /// Wait this long before sending anything.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::new(status).header("Location", location)
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

struct Inner {
    handler: Box<Handler>,
    log: Mutex<Vec<Served>>,
}

/// The server; stops accepting when dropped.
pub struct FaultServer {
    addr: String,
    inner: Arc<Inner>,
    shutdown: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Listen on `127.0.0.1:0`, answering every request with `handler`.
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let inner = Arc::new(Inner {
            handler: Box::new(handler),
            log: Mutex::new(Vec::new()),
        });
        let shutdown = Arc::new(AtomicBool::new(false));
        let thread = {
            let inner = inner.clone();
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name("fault-registry".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if shutdown.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let inner = inner.clone();
                        let _ = std::thread::Builder::new()
                            .name("fault-conn".into())
                            .spawn(move || serve(&inner, conn));
                    }
                })
                .expect("spawn")
        };
        FaultServer {
            addr,
            inner,
            shutdown,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, the registry name to use.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Every answered request so far (TLS attempts included, method `TLS`).
    pub fn served(&self) -> Vec<Served> {
        self.inner.log.lock().unwrap().clone()
    }

    /// HTTP requests (not TLS attempts) to `path`.
    pub fn count(&self, path: &str) -> usize {
        self.requests_to(path).len()
    }

    /// HTTP requests (not TLS attempts) to `path`, in order.
    pub fn requests_to(&self, path: &str) -> Vec<Served> {
        self.served()
            .into_iter()
            .filter(|s| s.request.method != "TLS" && s.request.path == path)
            .collect()
    }

    /// All HTTP requests (not TLS attempts).
    pub fn http_requests(&self) -> Vec<Served> {
        self.served()
            .into_iter()
            .filter(|s| s.request.method != "TLS")
            .collect()
    }

    /// Waits (up to `timeout`) until `n` requests are logged and all answers are over, then
    /// returns the log.
    pub fn wait_done(&self, n: usize, timeout: Duration) -> Vec<Served> {
        let until = Instant::now() + timeout;
        loop {
            let served = self.served();
            if (served.len() >= n && served.iter().all(|s| s.done)) || Instant::now() > until {
                return served;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        // wake the accept loop
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(inner: &Inner, mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut first = [0u8; 1];
    match conn.peek(&mut first) {
        Ok(1) => {}
        _ => return,
    }
    if first[0] == 0x16 {
        // a TLS handshake record: answer in plain HTTP, like Go's server
        inner.log.lock().unwrap().push(Served {
            request: Seen {
                method: "TLS".into(),
                path: String::new(),
                query: None,
                headers: Vec::new(),
                at: Instant::now(),
            },
            status: 400,
            done: true,
            body_written: 0,
            complete: true,
        });
        let _ = conn.write_all(
            b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        let _ = conn.shutdown(Shutdown::Write);
        return;
    }
    let Some(request) = read_request(&conn) else {
        return;
    };
    let reply = (inner.handler)(&request);
    let index = {
        let mut log = inner.log.lock().unwrap();
        log.push(Served {
            request: request.clone(),
            status: reply.status,
            done: false,
            body_written: 0,
            complete: false,
        });
        log.len() - 1
    };
    let (body_written, complete) = respond(&mut conn, &request, &reply);
    let _ = conn.shutdown(Shutdown::Both);
    let mut log = inner.log.lock().unwrap();
    log[index].done = true;
    log[index].body_written = body_written;
    log[index].complete = complete;
}

fn read_request(conn: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    // requests here have no bodies; drain a declared one anyway
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > 0 {
        let mut sink = vec![0; len.min(1 << 20)];
        let _ = reader.read_exact(&mut sink);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target, None),
    };
    Some(Seen {
        method,
        path,
        query,
        headers,
        at: Instant::now(),
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// Writes the reply; returns (body bytes written, whether all of it went out).
fn respond(conn: &mut TcpStream, request: &Seen, reply: &Reply) -> (usize, bool) {
    if !reply.delay.is_zero() {
        std::thread::sleep(reply.delay);
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        head += &format!("{k}: {v}\r\n");
    }
    let has_length = reply
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    match &reply.body {
        Body::Full(b) if !has_length => head += &format!("Content-Length: {}\r\n", b.len()),
        Body::Full(_) => {}
        Body::Chunked { .. } => head += "Transfer-Encoding: chunked\r\n",
    }
    head += "Connection: close\r\n\r\n";
    if conn.write_all(head.as_bytes()).is_err() {
        return (0, false);
    }
    if request.method == "HEAD" {
        return (0, true);
    }
    let written = |r: io::Result<()>| r.is_ok();
    match &reply.body {
        Body::Full(b) => {
            let ok = written(conn.write_all(b));
            (if ok { b.len() } else { 0 }, ok)
        }
        Body::Chunked {
            chunk,
            count,
            pause,
        } => {
            let mut sent = 0;
            for _ in 0..*count {
                if !pause.is_zero() {
                    std::thread::sleep(*pause);
                }
                let frame = [
                    format!("{:x}\r\n", chunk.len()).as_bytes(),
                    chunk.as_slice(),
                    b"\r\n",
                ]
                .concat();
                if !written(conn.write_all(&frame)) {
                    return (sent, false);
                }
                sent += chunk.len();
            }
            let ok = written(conn.write_all(b"0\r\n\r\n"));
            (sent, ok)
        }
    }
}

// ------------------------------------------------------------ forwarding ---

/// Decides per request whether a forwarding server injects a fault: `Some(reply)` answers
/// the request with it, `None` passes it to the real registry.
pub type Injector = dyn Fn(&Seen) -> Option<Reply> + Send + Sync;

/// What a forwarding server does to the real registry's answers, switchable at run time.
#[derive(Clone, Default)]
pub struct FaultSwitch {
    inner: Arc<Mutex<SwitchState>>,
}

#[derive(Default)]
struct SwitchState {
    inject: Option<Arc<Injector>>,
    delay: Duration,
}

impl FaultSwitch {
    pub fn new() -> FaultSwitch {
        FaultSwitch::default()
    }
    /// From now on `inject` decides each request.
    pub fn inject(&self, inject: impl Fn(&Seen) -> Option<Reply> + Send + Sync + 'static) {
        self.inner.lock().unwrap().inject = Some(Arc::new(inject));
    }
    /// Every request gets `reply` instead of the registry's answer.
    pub fn always(&self, reply: Reply) {
        self.inject(move |_| Some(reply.clone()));
    }
    /// The registry's answers are held back `delay` before they are sent.
    pub fn delay(&self, delay: Duration) {
        self.inner.lock().unwrap().delay = delay;
    }
    /// Back to a plain proxy: no injected faults, no delay.
    pub fn clear(&self) {
        let mut state = self.inner.lock().unwrap();
        state.inject = None;
        state.delay = Duration::ZERO;
    }
    fn decide(&self, request: &Seen) -> Result<Reply, Duration> {
        let (inject, delay) = {
            let state = self.inner.lock().unwrap();
            (state.inject.clone(), state.delay)
        };
        match inject.and_then(|f| f(request)) {
            Some(reply) => Ok(reply),
            None => Err(delay),
        }
    }
}

impl FaultServer {
    /// A proxy in front of the plain-HTTP registry at `upstream` (`127.0.0.1:PORT`): each
    /// request is answered by `switch` (a fault) or passed on and the registry's answer
    /// relayed (after the switch's delay, if any). The log shows every request with the
    /// status the client got. A registry that cannot be reached gives 502.
    pub fn forward(upstream: &str, switch: FaultSwitch) -> FaultServer {
        let upstream = upstream.to_string();
        FaultServer::start(move |request: &Seen| match switch.decide(request) {
            Ok(reply) => reply,
            Err(delay) => relay(&upstream, request).delay(delay),
        })
    }
}

/// Sends `request` to `upstream` and turns its answer into a [`Reply`] (a chunked body is
/// de-chunked; hop-by-hop headers are dropped); for handlers that add to a real registry's
/// answers (quota headers, say).
pub fn relay(upstream: &str, request: &Seen) -> Reply {
    match try_relay(upstream, request) {
        Ok(reply) => reply,
        Err(e) => Reply::new(502)
            .header("Content-Type", "text/plain")
            .body(format!("fault proxy: {upstream}: {e}")),
    }
}

fn try_relay(upstream: &str, request: &Seen) -> io::Result<Reply> {
    let mut conn = TcpStream::connect(upstream)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let target = match &request.query {
        Some(q) => format!("{}?{q}", request.path),
        None => request.path.clone(),
    };
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nHost: {upstream}\r\n",
        request.method
    );
    for (k, v) in &request.headers {
        if !matches!(
            k.as_str(),
            "host" | "connection" | "keep-alive" | "content-length" | "transfer-encoding"
        ) {
            head += &format!("{k}: {v}\r\n");
        }
    }
    head += "Connection: close\r\n\r\n";
    conn.write_all(head.as_bytes())?;

    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut reply = Reply::new(status);
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k.to_ascii_lowercase().as_str() {
            "connection" | "keep-alive" => continue,
            "transfer-encoding" => {
                chunked = v.eq_ignore_ascii_case("chunked");
                continue;
            }
            "content-length" => length = v.parse::<usize>().ok(),
            _ => {}
        }
        reply = reply.header(k, v);
    }
    let body = if request.method == "HEAD" || status == 204 || status == 304 {
        Vec::new()
    } else if chunked {
        read_chunked(&mut reader)?
    } else if let Some(n) = length {
        let mut body = vec![0; n];
        reader.read_exact(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body
    };
    Ok(reply.body(body))
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = size.trim().split(';').next().unwrap_or("");
        let n = usize::from_str_radix(size, 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {size:?}")))?;
        if n == 0 {
            // trailers, then the empty line
            loop {
                let mut t = String::new();
                if reader.read_line(&mut t)? == 0 || t.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + n, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}
