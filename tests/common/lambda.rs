//! Helpers for the integration tests of `runlambda run`: a function directory holding the
//! python-echo example, a `runlambda run` server process that is stopped with Ctrl-C when
//! dropped, and a minimal blocking HTTP/1.1 client for its Invoke API (no HTTP crate needed).

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long `Server::start` waits for the `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `Drop` waits after SIGINT before it sends SIGKILL.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// A request whose answer takes longer than this fails instead of hanging the test.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Copies the python-echo example into `dir/python-echo` (the `provided` layout: `bootstrap` at
/// the root) and returns that directory; `runlambda run` names the function `python-echo`.
pub fn python_function(dir: &Path) -> PathBuf {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/examples/python-echo/bootstrap");
    let function = dir.join("python-echo");
    fs::create_dir_all(&function).unwrap();
    fs::copy(&source, function.join("bootstrap")).unwrap(); // the mode (executable) comes along
    function
}

/// A cargo example beside the `runlambda` binary (`target/<triple>/<profile>/examples/NAME`). A plain
/// `cargo test` builds the examples; `cargo test --test X` alone does not.
pub fn example_binary(name: &str) -> PathBuf {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_runlambda")).parent().unwrap();
    let path = bin_dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --examples` (same profile as the tests)",
        path.display()
    );
    path
}

/// Copies the `rust_echo` example as `dir/rust-echo/bootstrap` and returns that directory.
pub fn rust_function(dir: &Path) -> PathBuf {
    let function = dir.join("rust-echo");
    fs::create_dir_all(&function).unwrap();
    fs::copy(example_binary("rust_echo"), function.join("bootstrap")).unwrap();
    function
}

/// A layer holding the `rust_extension` example as `extensions/rust_extension` (it appears as
/// `/opt/extensions/rust_extension` under `--layer`); returns the layer directory.
pub fn extension_layer(dir: &Path) -> PathBuf {
    let layer = dir.join("extension-layer");
    fs::create_dir_all(layer.join("extensions")).unwrap();
    let target = layer.join("extensions/rust_extension");
    fs::copy(example_binary("rust_extension"), target).unwrap();
    layer
}

/// An HTTP response; `headers` holds the header fields in order, then any chunked trailers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy), for assertions and messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The value of the first header called `name`, compared case-insensitively.
pub fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    field(&r.headers, name)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A running `runlambda run`; dropping it sends Ctrl-C (SIGINT), then SIGKILL after 10 s.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub endpoint: String,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    status: Option<ExitStatus>,
}

impl Server {
    /// Spawns `runlambda run ARGS --listen 127.0.0.1:0` and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runlambda"));
        cmd.arg("run").args(args);
        Server::spawn(cmd)
    }

    /// Like `start`, for a prepared command that ends in `run ...` (e.g. one carrying a test's
    /// `--config`): appends `--listen 127.0.0.1:0` and captures stdout and stderr.
    pub fn spawn(mut cmd: Command) -> Server {
        cmd.args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot spawn runlambda");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let sink = stdout.clone();
        thread::spawn(move || watch_stdout(out, sink, tx));
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        thread::spawn(move || drain(err, sink));

        let Ok(endpoint) = rx.recv_timeout(STARTUP_TIMEOUT) else {
            // Timed out, or stdout closed without the line: the server is of no use.
            let _ = child.kill();
            let status = child.wait().unwrap();
            thread::sleep(Duration::from_millis(100)); // let the readers catch up
            let text =
                |buf: &Mutex<Vec<u8>>| String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
            panic!(
                "runlambda run never printed `listening on http://...` ({status})\n\
                 stdout:\n{}\nstderr:\n{}",
                text(&stdout),
                text(&stderr)
            );
        };
        Server {
            child,
            endpoint,
            stdout,
            stderr,
            status: None,
        }
    }

    /// Everything the server printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Everything the server printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// The process id of `runlambda run`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Invokes function `name`: `POST /2015-03-31/functions/{name}/invocations`.
    pub fn invoke(&self, name: &str, payload: &[u8], headers: &[(&str, &str)]) -> Response {
        let path = format!("/2015-03-31/functions/{name}/invocations");
        self.request("POST", &path, payload, headers)
    }

    /// `InvokeWithResponseStream` of function `name` with `headers` added to the request, its
    /// answer read as it arrives; panics on an I/O error or a status other than 200.
    pub fn invoke_streaming(
        &self,
        name: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> EventStream {
        let path = format!("/2021-11-15/functions/{name}/response-streaming-invocations");
        EventStream::open(&self.endpoint, &path, payload, headers)
            .unwrap_or_else(|e| panic!("POST {path}: {e}\nstderr:\n{}", self.stderr()))
    }

    /// Any request to the server, on a fresh connection; panics on an I/O error.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Response {
        http_request(&self.endpoint, method, path, body, headers)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\nstderr:\n{}", self.stderr()))
    }

    /// A keep-alive connection to the server; panics when it cannot connect.
    pub fn keep_alive(&self) -> KeepAlive {
        KeepAlive::open(&self.endpoint)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.endpoint))
    }

    /// Ctrl-C: SIGINT, wait up to 10 s, then SIGKILL; returns how the server exited.
    /// Calling it again returns the same status.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGINT); // it may already have exited: the wait below tells
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            thread::sleep(Duration::from_millis(20));
        };
        self.status = Some(status);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let status = self.stop();
        if thread::panicking() {
            eprintln!("runlambda run ({status}) stderr:\n{}", self.stderr());
        }
    }
}

/// Copies the server's stdout into `sink` and sends the endpoint of the first
/// `listening on http://HOST:PORT` line through `tx`.
fn watch_stdout(out: ChildStdout, sink: Arc<Mutex<Vec<u8>>>, tx: mpsc::Sender<String>) {
    let mut reader = BufReader::new(out);
    let mut tx = Some(tx);
    let mut line = Vec::new();
    while let Ok(n) = reader.read_until(b'\n', &mut line) {
        if n == 0 {
            break;
        }
        sink.lock().unwrap().extend_from_slice(&line);
        if let Some(endpoint) = listening_endpoint(&String::from_utf8_lossy(&line)) {
            if let Some(tx) = tx.take() {
                let _ = tx.send(endpoint);
            }
        }
        line.clear();
    }
}

/// The URL in a `listening on http://127.0.0.1:PORT` line.
fn listening_endpoint(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on http://")? + "listening on ".len()..];
    let url = rest.split_whitespace().next()?;
    Some(url.trim_end_matches(['.', ',', '/']).to_string())
}

fn drain(mut from: impl Read, sink: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        sink.lock().unwrap().extend_from_slice(&buf[..n]);
    }
}

/// One HTTP/1.1 request with a Content-Length body on a fresh connection to `endpoint`
/// (`http://host:port`), answered with a Content-Length, chunked or read-to-close body.
pub fn http_request(
    endpoint: &str,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> io::Result<Response> {
    let mut reader = send(endpoint, method, path, body, headers)?;
    read_response(&mut reader, method == "HEAD")
}

/// Sends one HTTP/1.1 request with a Content-Length body on a fresh connection to `endpoint`
/// (`http://host:port`); returns the connection, to read the answer from.
fn send(
    endpoint: &str,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> io::Result<BufReader<TcpStream>> {
    let (mut stream, authority) = connect(endpoint)?;
    let mut headers = headers.to_vec();
    headers.push(("Connection", "close"));
    stream.write_all(&request_bytes(&authority, method, path, body, &headers))?;
    Ok(BufReader::new(stream))
}

/// A TCP connection to `endpoint` (`http://host:port`), and its `host:port`.
fn connect(endpoint: &str) -> io::Result<(TcpStream, String)> {
    let authority = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let authority = authority.trim_end_matches('/');
    let stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok((stream, authority.to_string()))
}

fn request_bytes(
    authority: &str,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One keep-alive connection, as an SDK keeps one: invocations one after another on it.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
    authority: String,
}

impl KeepAlive {
    pub fn open(endpoint: &str) -> io::Result<KeepAlive> {
        let (stream, authority) = connect(endpoint)?;
        Ok(KeepAlive {
            reader: BufReader::new(stream),
            authority,
        })
    }

    /// Invokes function `name` on this connection.
    pub fn invoke(
        &mut self,
        name: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> io::Result<Response> {
        let path = format!("/2015-03-31/functions/{name}/invocations");
        let bytes = request_bytes(&self.authority, "POST", &path, payload, headers);
        self.reader.get_mut().write_all(&bytes)?;
        read_response(&mut self.reader, false)
    }
}

/// An `InvokeWithResponseStream` answer (a chunked AWS event stream), read one event-stream
/// message at a time as the server sends it.
pub struct EventStream {
    reader: BufReader<TcpStream>,
    /// Bytes of the body not yet returned as a message.
    pending: Vec<u8>,
    /// The last chunk has been read.
    ended: bool,
}

impl EventStream {
    fn open(
        endpoint: &str,
        path: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> io::Result<EventStream> {
        let mut reader = send(endpoint, "POST", path, payload, headers)?;
        let status = read_line(&mut reader)?;
        let headers = read_fields(&mut reader)?;
        if !status.starts_with("HTTP/1.1 200 ") {
            return Err(invalid(format!("answered {status:?}")));
        }
        let chunked = field(&headers, "transfer-encoding").is_some_and(|te| te.contains("chunked"));
        if !chunked {
            return Err(invalid(format!("not a chunked answer: {headers:?}")));
        }
        Ok(EventStream {
            reader,
            pending: Vec::new(),
            ended: false,
        })
    }

    /// The next message's `:event-type` and payload, or `None` at the end of the answer.
    pub fn next_message(&mut self) -> io::Result<Option<(String, Vec<u8>)>> {
        loop {
            if self.pending.len() >= 4 {
                let total = u32::from_be_bytes(self.pending[..4].try_into().unwrap()) as usize;
                if self.pending.len() >= total {
                    let message: Vec<u8> = self.pending.drain(..total).collect();
                    return decode_message(&message).map(Some);
                }
            }
            if self.ended {
                return match self.pending.is_empty() {
                    true => Ok(None),
                    false => Err(invalid("the answer ended inside a message")),
                };
            }
            let line = read_line(&mut self.reader)?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                read_fields(&mut self.reader)?;
                self.ended = true;
                continue;
            }
            let start = self.pending.len();
            self.pending.resize(start + size, 0);
            self.reader.read_exact(&mut self.pending[start..])?;
            read_line(&mut self.reader)?;
        }
    }
}

/// One event-stream message: prelude (total and header lengths, CRC), string headers, the
/// payload, the message CRC. Returns `:event-type` and the payload.
fn decode_message(message: &[u8]) -> io::Result<(String, Vec<u8>)> {
    let headers_len = u32::from_be_bytes(message[4..8].try_into().unwrap()) as usize;
    let headers = &message[12..12 + headers_len];
    let mut at = 0;
    let mut event_type = None;
    while at < headers.len() {
        let name_len = headers[at] as usize;
        let name = String::from_utf8_lossy(&headers[at + 1..at + 1 + name_len]).into_owned();
        at += 1 + name_len;
        if headers[at] != 7 {
            return Err(invalid(format!("header {name} is not a string")));
        }
        let value_len = u16::from_be_bytes(headers[at + 1..at + 3].try_into().unwrap()) as usize;
        let value = String::from_utf8_lossy(&headers[at + 3..at + 3 + value_len]).into_owned();
        at += 3 + value_len;
        if name == ":event-type" {
            event_type = Some(value);
        }
    }
    let event_type = event_type.ok_or_else(|| invalid("a message without :event-type"))?;
    let payload = message[12 + headers_len..message.len() - 4].to_vec();
    Ok((event_type, payload))
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// One line without its CRLF; an error at end of stream.
fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Header lines up to the empty line.
fn read_fields(r: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut fields = Vec::new();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            return Ok(fields);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        fields.push((name.trim().to_string(), value.trim().to_string()));
    }
}

/// Parses one response; interim 1xx responses are skipped.
fn read_response(r: &mut impl BufRead, head_only: bool) -> io::Result<Response> {
    let (status, mut headers) = loop {
        let status_line = read_line(r)?;
        let mut parts = status_line.splitn(3, ' ');
        let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
            return Err(invalid(format!("bad status line {status_line:?}")));
        };
        if !version.starts_with("HTTP/1.") {
            return Err(invalid(format!("bad status line {status_line:?}")));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| invalid(format!("bad status line {status_line:?}")))?;
        let headers = read_fields(r)?;
        if !(100..200).contains(&status) {
            break (status, headers);
        }
    };
    if head_only || status == 204 || status == 304 {
        let body = Vec::new();
        return Ok(Response {
            status,
            headers,
            body,
        });
    }
    let mut body = Vec::new();
    let chunked = field(&headers, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let line = read_line(r)?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            if !read_line(r)?.is_empty() {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
        headers.extend(read_fields(r)?); // trailers
    } else if let Some(length) = field(&headers, "content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
        body.resize(length, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?; // delimited by the end of the connection
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves one connection: reads a request (head + Content-Length body), answers with
    /// `reply` written in two pieces (so the parser sees a split), and returns the request.
    fn serve_once(reply: &'static [u8]) -> (String, thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = Vec::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
                request.extend_from_slice(line.as_bytes());
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            request.extend_from_slice(&body);
            let mut stream = stream;
            let (a, b) = reply.split_at(reply.len() / 2);
            stream.write_all(a).unwrap();
            stream.flush().unwrap();
            thread::sleep(Duration::from_millis(20));
            stream.write_all(b).unwrap();
            request
        });
        (endpoint, handle)
    }

    #[test]
    fn content_length_response_and_request_shape() {
        let (endpoint, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nX-Amz-Function-Error: Unhandled\r\ncontent-length: 11\r\n\r\nhello world",
        );
        let r = http_request(
            &endpoint,
            "POST",
            "/2015-03-31/functions/f/invocations",
            b"{\"a\":1}",
            &[("X-Amz-Log-Type", "Tail")],
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello world");
        assert_eq!(header(&r, "x-amz-function-error"), Some("Unhandled"));
        assert_eq!(header(&r, "X-Missing"), None);
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(request.starts_with("POST /2015-03-31/functions/f/invocations HTTP/1.1\r\n"));
        assert!(request.contains("\r\nContent-Length: 7\r\n"));
        assert!(request.contains("\r\nX-Amz-Log-Type: Tail\r\n"));
        assert!(request.ends_with("\r\n\r\n{\"a\":1}"));
    }

    #[test]
    fn chunked_response_with_extensions_and_trailers() {
        let (endpoint, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nEnd-Of-Response: Complete\r\n\r\n",
        );
        let r = http_request(&endpoint, "GET", "/", b"", &[]).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "hello 0123456789");
        assert_eq!(header(&r, "end-of-response"), Some("Complete"));
        server.join().unwrap();
    }

    #[test]
    fn empty_and_close_delimited_bodies() {
        let (endpoint, server) =
            serve_once(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        let r = http_request(&endpoint, "POST", "/", b"{}", &[]).unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        server.join().unwrap();

        let (endpoint, server) =
            serve_once(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\nqueued");
        let r = http_request(&endpoint, "POST", "/", b"", &[]).unwrap();
        assert_eq!((r.status, r.text().as_str()), (202, "queued"));
        server.join().unwrap();
    }

    #[test]
    fn truncated_responses_are_errors() {
        let (endpoint, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
        assert!(http_request(&endpoint, "GET", "/", b"", &[]).is_err());
        server.join().unwrap();

        let (endpoint, server) =
            serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
        assert!(http_request(&endpoint, "GET", "/", b"", &[]).is_err());
        server.join().unwrap();
    }

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script, "sh"]); // `--listen 127.0.0.1:0` lands in $1 and $2
        cmd
    }

    #[test]
    fn spawn_finds_the_endpoint_and_stop_interrupts() {
        use std::os::unix::process::ExitStatusExt;
        let mut server = Server::spawn(sh(
            "echo starting; echo \"listening on http://127.0.0.1:1 ($1 $2)\"; exec sleep 60",
        ));
        assert_eq!(server.endpoint, "http://127.0.0.1:1");
        let started = Instant::now();
        let status = server.stop();
        assert_eq!(status.signal(), Some(libc::SIGINT));
        assert!(started.elapsed() < SHUTDOWN_TIMEOUT);
        assert_eq!(server.stop(), status);
        assert!(server.stdout().contains("(--listen 127.0.0.1:0)"));
    }

    #[test]
    #[should_panic(expected = "never printed `listening on http://...`")]
    fn spawn_panics_when_the_server_dies_first() {
        Server::spawn(sh("echo 'no bundle here' >&2; exit 3"));
    }

    #[test]
    fn listening_line() {
        let line = "listening on http://127.0.0.1:41234\n";
        assert_eq!(listening_endpoint(line).unwrap(), "http://127.0.0.1:41234");
        let line = "runlambda: listening on http://127.0.0.1:9000/ (function python-echo)";
        assert_eq!(listening_endpoint(line).unwrap(), "http://127.0.0.1:9000");
        assert_eq!(listening_endpoint("listening on unix:/run/x.sock"), None);
    }
}
