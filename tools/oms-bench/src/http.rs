//! A minimal HTTP/1.1 client over a tokio `TcpStream`: enough for keep-alive
//! GETs and small JSON writes to the daemon, with every wait bounded.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::Result;

/// Longest header section or chunk-size line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Largest response body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Parses `http://HOST:PORT[/]` and refuses anything but a loopback address.
pub fn loopback_addr(url: &str) -> Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let host_port = rest.trim_end_matches('/');
    let addr: SocketAddr = host_port
        .replace("localhost", "127.0.0.1")
        .parse()
        .map_err(|_| format!("{url}: expected http://127.0.0.1:PORT"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{url}: load goes only to loopback addresses").into());
    }
    Ok(addr)
}

/// A request, serialised once and sent as often as needed.
pub fn request(
    method: &str,
    path: &str,
    addr: SocketAddr,
    token: Option<&str>,
    json: Option<&str>,
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n");
    if let Some(token) = token {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    match json {
        Some(body) => {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        }
        None => req.push_str("\r\n"),
    }
    req.into_bytes()
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The server closed the connection before (or while) answering.
#[derive(Debug)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by the server")
    }
}

impl std::error::Error for Closed {}

/// Whether `e` says the server had closed the connection: at the end of a
/// read ([`Closed`]) or as a reset or broken pipe on a write.
fn is_closed(e: &crate::Error) -> bool {
    if e.downcast_ref::<Closed>().is_some() {
        return true;
    }
    e.downcast_ref::<std::io::Error>().is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
        )
    })
}

/// One keep-alive connection.
pub struct Conn {
    addr: SocketAddr,
    stream: BufReader<TcpStream>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Conn> {
        let stream = timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            addr,
            stream: BufReader::new(stream),
        })
    }

    /// The socket, to hold it open without reading.
    pub fn into_inner(self) -> TcpStream {
        self.stream.into_inner()
    }

    pub async fn send(&mut self, req: &[u8]) -> Result<()> {
        self.stream.get_mut().write_all(req).await?;
        Ok(())
    }

    /// Sends `req` and reads the answer, all within `limit`.
    pub async fn call(&mut self, req: &[u8], limit: Duration) -> Result<Response> {
        timeout(limit, async {
            self.send(req).await?;
            self.read_response().await
        })
        .await
        .map_err(|_| format!("no answer within {limit:?}"))?
    }

    /// [`Conn::call`] for a request that may be sent twice (a GET): when
    /// the server had closed this connection, sends it once more on a new
    /// one. The daemon closes a keep-alive connection that stays idle for
    /// its header read timeout (10 s; hyper starts that timer as soon as a
    /// response is written), so a connection kept for occasional requests
    /// (e.g. reading `/metrics` before and after opening 10,000 others)
    /// may be gone when it is used again.
    pub async fn call_again_if_closed(&mut self, req: &[u8], limit: Duration) -> Result<Response> {
        match self.call(req, limit).await {
            Err(e) if is_closed(&e) => {
                *self = Conn::connect(self.addr).await?;
                self.call(req, limit).await
            }
            answer => answer,
        }
    }

    /// Reads one response (Content-Length or chunked body).
    pub async fn read_response(&mut self) -> Result<Response> {
        read_response(&mut self.stream).await
    }
}

/// Reads one response (Content-Length or chunked body) from any buffered
/// reader, e.g. the read half of a socket another task writes to.
pub async fn read_response<R: AsyncBufRead + Unpin>(stream: &mut R) -> Result<Response> {
    let status_line = line(stream).await?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    let mut headers = Vec::new();
    loop {
        let line = line(stream).await?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
            headers.push((name.trim().to_ascii_lowercase(), value.to_string()));
        }
    }
    let body = if chunked {
        chunked_body(stream).await?
    } else {
        let n = length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(format!("response body of {n} bytes is too large").into());
        }
        let mut body = vec![0; n];
        stream.read_exact(&mut body).await?;
        body
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

async fn chunked_body<R: AsyncBufRead + Unpin>(stream: &mut R) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = line(stream).await?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size line {line:?}"))?;
        if size == 0 {
            // Trailers, then the blank line.
            while !self::line(stream).await?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err("chunked response body is too large".into());
        }
        let start = body.len();
        body.resize(start + size, 0);
        stream.read_exact(&mut body[start..]).await?;
        if !self::line(stream).await?.is_empty() {
            return Err("chunk not followed by CRLF".into());
        }
    }
}

/// One header line without its line end.
async fn line<R: AsyncBufRead + Unpin>(stream: &mut R) -> Result<String> {
    let mut buf = Vec::new();
    let n = stream
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Err(Closed.into());
    }
    if buf.last() != Some(&b'\n') {
        return Err("header line too long".into());
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(String::from_utf8(buf)?)
}

/// The daemon's `feed_waiters` gauge, from `/metrics` (open on loopback),
/// on `conn` or a new connection if the daemon closed that one.
pub async fn feed_waiters(conn: &mut Conn, addr: SocketAddr) -> Result<u64> {
    let resp = conn
        .call_again_if_closed(
            &request("GET", "/metrics", addr, None, None),
            Duration::from_secs(10),
        )
        .await?;
    if resp.status != 200 {
        return Err(format!("GET /metrics answered {}", resp.status).into());
    }
    let text = resp.text();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.split_once(' ')?;
            let name = name.split('{').next()?;
            name.ends_with("feed_waiters")
                .then(|| value.trim().parse::<f64>().ok())
                .flatten()
        })
        .map(|v| v as u64)
        .ok_or_else(|| "no feed_waiters gauge in /metrics".into())
}

/// Polls `feed_waiters` until it reaches `target` or `limit` passes.
pub async fn await_waiters(
    conn: &mut Conn,
    addr: SocketAddr,
    target: u64,
    limit: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let now = feed_waiters(conn, addr).await?;
        if now >= target {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(
                format!("only {now} of {target} long-polls were waiting after {limit:?}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback() {
        assert!(loopback_addr("http://127.0.0.1:8080").is_ok());
        assert!(loopback_addr("http://127.0.0.1:8080/").is_ok());
        assert!(loopback_addr("http://localhost:80").is_ok());
        assert!(loopback_addr("http://[::1]:80").is_ok());
        assert!(loopback_addr("http://10.0.0.1:80").is_err());
        assert!(loopback_addr("https://127.0.0.1:80").is_err());
    }

    #[tokio::test]
    async fn reads_length_and_chunked_bodies() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.expect("read");
            s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok\
                  HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            )
            .await
            .expect("write");
        });
        let mut conn = Conn::connect(addr).await.expect("connect");
        let req = request("GET", "/", addr, Some("t"), None);
        let a = conn.call(&req, Duration::from_secs(5)).await.expect("a");
        assert_eq!((a.status, a.text().as_str()), (200, "ok"));
        let b = conn.read_response().await.expect("b");
        assert_eq!((b.status, b.text().as_str()), (404, "abcde"));
        server.await.expect("server");
    }

    /// The daemon closes a keep-alive connection left idle for its header
    /// read timeout. `idle-conns` kept one for `/metrics` while it opened
    /// 10,000 others; when that took longer than 10 s the run failed with
    /// "connection closed by the server". A GET now goes out again on a
    /// new connection.
    #[tokio::test]
    async fn a_get_goes_out_again_when_the_server_closed_the_idle_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            // Each connection gets one answer, then is closed as the
            // daemon closes an idle one.
            for n in 0..2 {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.expect("read");
                s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n{n}").as_bytes())
                    .await
                    .expect("write");
            }
        });
        let mut conn = Conn::connect(addr).await.expect("connect");
        let req = request("GET", "/metrics", addr, None, None);
        let first = conn
            .call(&req, Duration::from_secs(5))
            .await
            .expect("first");
        assert_eq!(first.text(), "0");
        let again = conn
            .call_again_if_closed(&req, Duration::from_secs(5))
            .await
            .expect("sent again on a new connection");
        assert_eq!(again.text(), "1");
        server.await.expect("server");
    }
}
