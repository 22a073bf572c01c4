//! A keep-alive HTTP/1.1 client on hyper's client connection, to loopback
//! only, with every request bounded in time.
//!
//! What a torture harness needs from a client is an honest account of how a
//! request ended: a complete answer, a connection closed before any answer
//! (the server went away cleanly), a connection reset, an answer cut in the
//! middle, or no answer in time. Only a complete answer tells what the
//! server did; everything else is "unknown" to the caller.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A complete answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How a request ended without a complete answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Could not connect: the request was never sent.
    Connect(String),
    /// The connection closed (FIN) before any byte of an answer.
    Closed,
    /// The connection was reset, or broke in another way before an answer.
    Broken(String),
    /// The answer's head arrived, then its body was cut.
    Partial(String),
    /// No complete answer within the limit.
    Timeout,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect failed: {e}"),
            Failure::Closed => write!(f, "closed before an answer"),
            Failure::Broken(e) => write!(f, "connection broke: {e}"),
            Failure::Partial(e) => write!(f, "answer cut: {e}"),
            Failure::Timeout => write!(f, "no answer in time"),
        }
    }
}

/// One request to send.
pub struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Option<String>,
}

impl<'a> Call<'a> {
    pub fn get(path: &'a str, token: &'a str) -> Call<'a> {
        Call {
            method: Method::GET,
            path,
            token: Some(token),
            headers: &[],
            body: None,
        }
    }

    pub fn json(method: Method, path: &'a str, token: &'a str, body: String) -> Call<'a> {
        Call {
            method,
            path,
            token: Some(token),
            headers: &[],
            body: Some(body),
        }
    }
}

/// One keep-alive connection, reopened after a failure.
pub struct Client {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, sender: None }
    }

    /// Sends `call` and reads the whole answer, within `limit`.
    pub async fn send(&mut self, call: &Call<'_>, limit: Duration) -> Result<Reply, Failure> {
        let result = match timeout(limit, self.exchange(call)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        };
        if result.is_err() {
            // The connection is in an unknown state: never reuse it.
            self.sender = None;
        }
        result
    }

    async fn exchange(&mut self, call: &Call<'_>) -> Result<Reply, Failure> {
        let reused = match self.sender.take() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let mut sender = match reused {
            Some(s) => s,
            None => connect(self.addr).await?,
        };
        let mut req = Request::builder()
            .method(call.method.clone())
            .uri(call.path)
            .header("host", self.addr.to_string());
        if let Some(token) = call.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in call.headers {
            req = req.header(*name, *value);
        }
        let body = match &call.body {
            Some(body) => {
                req = req.header("content-type", "application/json");
                Full::new(Bytes::from(body.clone()))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|e| Failure::Broken(format!("bad request: {e}")))?;
        let response = sender.send_request(req).await.map_err(classify)?;
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Failure::Partial(e.to_string()))?
            .to_bytes();
        let closing = parts
            .headers
            .get("connection")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if !closing {
            self.sender = Some(sender);
        }
        Ok(Reply {
            status,
            headers: parts.headers,
            body,
        })
    }
}

/// Opens one HTTP/1.1 connection to a loopback address (for callers that
/// read a streamed answer themselves).
pub async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Failure> {
    if !addr.ip().is_loopback() {
        return Err(Failure::Connect(format!(
            "{addr} is not a loopback address"
        )));
    }
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::Connect(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::Connect(e.to_string()))?;
    tokio::spawn(async move {
        // Ends when the connection closes; errors show up on the request.
        let _ = conn.await;
    });
    Ok(sender)
}

/// A request error before the answer's head.
fn classify(e: hyper::Error) -> Failure {
    if e.is_incomplete_message() || e.is_canceled() {
        // hyper reports a connection closed before the head as an
        // incomplete message; a reset surfaces as an I/O source.
        if let Some(io) =
            std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>())
            && io.kind() != std::io::ErrorKind::UnexpectedEof
        {
            return Failure::Broken(io.to_string());
        }
        return Failure::Closed;
    }
    Failure::Broken(e.to_string())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-connection server that reads a request and then writes `reply`
    /// (possibly nothing) and closes.
    async fn server(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await.expect("read");
            s.write_all(reply).await.expect("write");
            s.shutdown().await.expect("shutdown");
        });
        addr
    }

    async fn get(addr: SocketAddr) -> Result<Reply, Failure> {
        Client::new(addr)
            .send(&Call::get("/x", "t"), Duration::from_secs(10))
            .await
    }

    #[tokio::test]
    async fn tells_an_answer_from_a_clean_close_and_a_cut_answer() {
        let whole = get(server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await).await;
        let whole = whole.expect("a complete answer");
        assert_eq!((whole.status, &whole.body[..]), (200, &b"ok"[..]));

        assert_eq!(get(server(b"").await).await.err(), Some(Failure::Closed));

        let cut = get(server(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok").await).await;
        assert!(matches!(cut, Err(Failure::Partial(_))), "{cut:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_sent() {
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            listener.local_addr().expect("addr")
        };
        assert!(matches!(get(addr).await, Err(Failure::Connect(_))));
    }
}
