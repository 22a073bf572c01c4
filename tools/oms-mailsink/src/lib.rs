//! `oms-mailsink`: a small fake SMTP server on `127.0.0.1:0`, over
//! `std::net::TcpListener`, for the tests and benchmarks of the notification
//! dispatcher. Not shipped.
//!
//! It speaks enough SMTP for lettre (EHLO, MAIL, RCPT, DATA, NOOP, RSET,
//! QUIT) without TLS or AUTH, records every message it received and, per
//! message, does what a [`Behaviour`] decides once the data is in: accept
//! (`250`), refuse for now (`421`), refuse for good (`550`), stall without
//! answering until the client gives up, or drop the connection after
//! `DATA` before any answer (the client then cannot know whether the
//! message arrived: the duplicate a `Message-ID` exists for).
//!
//! Every connection has its own thread; the sink stops when dropped.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the sink does with a message once its data is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `250`: accepted.
    Accept,
    /// Wait, then `250` (a slow server).
    AcceptAfter(Duration),
    /// `421`: a temporary refusal (the client should retry later).
    Temporary,
    /// `550`: a permanent refusal.
    Permanent,
    /// No answer at all until the client hangs up (or a minute passes).
    Stall,
    /// Close the connection without answering the data.
    DropAfterData,
}

impl Action {
    /// Whether the client was told the message was accepted.
    pub fn accepted(self) -> bool {
        matches!(self, Action::Accept | Action::AcceptAfter(_))
    }
}

/// Decides the [`Action`] for each message: gets the message and how many
/// times a message with its `Message-ID` arrived before (0 the first time).
pub type Behaviour = dyn Fn(&Message, usize) -> Action + Send + Sync;

/// One message as it arrived.
#[derive(Debug, Clone)]
pub struct Message {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// The data after un-dot-stuffing, CRLF line ends, no final dot line.
    pub data: String,
    /// When `MAIL FROM` arrived and when the sink answered (or dropped,
    /// or gave up stalling): the time the sender was sending it.
    pub started: Instant,
    pub finished: Instant,
    /// What the sink did.
    pub action: Action,
    /// Which connection (numbered from 1) carried it.
    pub connection: u64,
}

impl Message {
    /// A header of the message (the first one of that name, unfolded),
    /// case-insensitively.
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(head_of(&self.data), name)
    }

    /// The `Message-ID` header.
    pub fn message_id(&self) -> Option<String> {
        self.header("message-id")
    }

    /// The `Subject` header (RFC 2047 encoded words are left as they are).
    pub fn subject(&self) -> Option<String> {
        self.header("subject")
    }

    /// The decoded body of the first part with this content type
    /// (`text/plain`, `text/html`), or of the whole message when it is
    /// not multipart and has that type.
    pub fn part(&self, content_type: &str) -> Option<String> {
        find_part(&self.data, content_type)
    }

    /// Whether a client was told the message was accepted.
    pub fn accepted(&self) -> bool {
        self.action.accepted()
    }
}

struct Shared {
    behaviour: Box<Behaviour>,
    messages: Mutex<Vec<Message>>,
    seen: Mutex<HashMap<String, usize>>,
    connections: AtomicU64,
    stop: AtomicBool,
}

/// A running fake SMTP server; stops when dropped.
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Sink {
    /// A sink that accepts every message.
    pub fn start() -> io::Result<Sink> {
        Sink::with(|_, _| Action::Accept)
    }

    /// A sink whose answers `behaviour` decides.
    pub fn with(
        behaviour: impl Fn(&Message, usize) -> Action + Send + Sync + 'static,
    ) -> io::Result<Sink> {
        Sink::bind("127.0.0.1:0", behaviour)
    }

    /// A sink on a given loopback address (`127.0.0.1:0` for any port).
    pub fn bind(
        address: &str,
        behaviour: impl Fn(&Message, usize) -> Action + Send + Sync + 'static,
    ) -> io::Result<Sink> {
        let listener = TcpListener::bind(address)?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "the mail sink listens on loopback addresses only",
            ));
        }
        let shared = Arc::new(Shared {
            behaviour: Box::new(behaviour),
            messages: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
            connections: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("mailsink-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accepting.stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let number = accepting.connections.fetch_add(1, Ordering::AcqRel) + 1;
                    let session = Arc::clone(&accepting);
                    let _ = std::thread::Builder::new()
                        .name(format!("mailsink-{number}"))
                        .spawn(move || {
                            // A client that vanishes mid-session is no error of the sink.
                            let _ = serve(&session, stream, number);
                        });
                }
            })?;
        Ok(Sink {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT?tls=none`, the `OMS_SMTP_URL` of this sink.
    pub fn url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }

    /// Every message received so far, whatever the sink answered.
    pub fn messages(&self) -> Vec<Message> {
        lock(&self.shared.messages).clone()
    }

    /// The messages the sink answered `250` to.
    pub fn accepted(&self) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(Message::accepted)
            .collect()
    }

    /// How many messages arrived (whatever the answer).
    pub fn count(&self) -> usize {
        lock(&self.shared.messages).len()
    }

    /// Connections accepted so far (connection reuse keeps this small).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Acquire)
    }

    /// Polls until `check` holds for the received messages, or fails after
    /// `limit` with what arrived.
    pub fn wait_for(&self, limit: Duration, what: &str, check: impl Fn(&[Message]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            {
                let messages = lock(&self.shared.messages);
                if check(&messages) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "mail sink: timed out after {limit:?} waiting for {what}; {} message(s) arrived",
                    messages.len()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wake the blocking accept so its thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide what the sink recorded.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long a session waits for the next command before hanging up.
const IDLE: Duration = Duration::from_secs(30);
/// The longest stall.
const MAX_STALL: Duration = Duration::from_secs(60);

/// One SMTP session.
fn serve(shared: &Shared, stream: TcpStream, connection: u64) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 oms-mailsink ESMTP\r\n")?;
    let mut mail_from: Option<(String, Instant)> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => out.write_all(b"250-oms-mailsink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")?,
            "HELO" | "NOOP" => out.write_all(b"250 ok\r\n")?,
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                out.write_all(b"250 ok\r\n")?;
            }
            "MAIL" => {
                mail_from = Some((address_of(command), Instant::now()));
                rcpt_to.clear();
                out.write_all(b"250 ok\r\n")?;
            }
            "RCPT" => {
                rcpt_to.push(address_of(command));
                out.write_all(b"250 ok\r\n")?;
            }
            "DATA" => {
                let Some((from, started)) = mail_from.take() else {
                    out.write_all(b"503 MAIL first\r\n")?;
                    continue;
                };
                out.write_all(b"354 go ahead\r\n")?;
                let data = read_data(&mut reader)?;
                let mut message = Message {
                    mail_from: from,
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                    started,
                    finished: started,
                    action: Action::Accept,
                    connection,
                };
                let before = {
                    let mut seen = lock(&shared.seen);
                    let key = message.message_id().unwrap_or_default();
                    let count = seen.entry(key).or_insert(0);
                    *count += 1;
                    *count - 1
                };
                let action = (shared.behaviour)(&message, before);
                message.action = action;
                let reply: Option<&[u8]> = match action {
                    Action::Accept => Some(b"250 ok: queued\r\n"),
                    Action::AcceptAfter(delay) => {
                        std::thread::sleep(delay);
                        Some(b"250 ok: queued\r\n")
                    }
                    Action::Temporary => Some(b"421 4.3.0 try again later\r\n"),
                    Action::Permanent => Some(b"550 5.1.1 mailbox unavailable\r\n"),
                    Action::Stall => {
                        stall(&mut reader, shared);
                        None
                    }
                    Action::DropAfterData => None,
                };
                message.finished = Instant::now();
                lock(&shared.messages).push(message);
                match reply {
                    Some(reply) => out.write_all(reply)?,
                    None => {
                        let _ = out.shutdown(Shutdown::Both);
                        return Ok(());
                    }
                }
                if action == Action::Temporary {
                    // 421 closes the transmission channel (RFC 5321 3.8).
                    let _ = out.shutdown(Shutdown::Both);
                    return Ok(());
                }
            }
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            "STARTTLS" => out.write_all(b"454 TLS not available\r\n")?,
            _ => out.write_all(b"502 command not implemented\r\n")?,
        }
    }
}

/// Reads the message data up to the line with a single dot.
fn read_data(reader: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "data cut short"));
        }
        let content = line.trim_end_matches(['\r', '\n']);
        if content == "." {
            return Ok(data);
        }
        data.push_str(content.strip_prefix('.').unwrap_or(content));
        data.push_str("\r\n");
    }
}

/// Answers nothing until the client hangs up, the sink stops, or
/// [`MAX_STALL`] passes.
fn stall(reader: &mut BufReader<TcpStream>, shared: &Shared) {
    let stream = reader.get_mut();
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let deadline = Instant::now() + MAX_STALL;
    let mut buffer = [0u8; 512];
    while Instant::now() < deadline && !shared.stop.load(Ordering::Acquire) {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// The address inside `<...>` of a MAIL or RCPT command.
fn address_of(command: &str) -> String {
    match (command.find('<'), command.rfind('>')) {
        (Some(open), Some(close)) if open < close => command[open + 1..close].to_string(),
        _ => String::new(),
    }
}

/// The header block of a message or part (up to the first empty line).
fn head_of(data: &str) -> &str {
    data.split_once("\r\n\r\n").map_or(data, |(head, _)| head)
}

fn body_of(data: &str) -> &str {
    data.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// The first header `name` in a header block, unfolded.
fn header_in(head: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = found.as_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((key, value)) = line.split_once(':')
            && key.trim().eq_ignore_ascii_case(name)
        {
            found = Some(value.trim().to_string());
        }
    }
    found
}

/// A parameter of a header value: `boundary` of `multipart/alternative; boundary="x"`.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (key, v) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The decoded body of the first part of `content_type` in an entity.
fn find_part(entity: &str, content_type: &str) -> Option<String> {
    let head = head_of(entity);
    let declared = header_in(head, "content-type").unwrap_or_else(|| "text/plain".into());
    let mime = declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        let boundary = parameter(&declared, "boundary")?;
        let delimiter = format!("--{boundary}");
        return body_of(entity)
            .split(delimiter.as_str())
            .skip(1)
            .take_while(|part| !part.starts_with("--"))
            .find_map(|part| find_part(part.trim_start_matches("\r\n"), content_type));
    }
    if mime != content_type {
        return None;
    }
    let encoding = header_in(head, "content-transfer-encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = body_of(entity);
    let bytes = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => decode_base64(body),
        _ => body.as_bytes().to_vec(),
    };
    Some(String::from_utf8_lossy(&bytes).trim_end().to_string())
}

/// RFC 2045 quoted-printable, soft line breaks included.
pub fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

/// Standard base64, whitespace ignored.
pub fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let Some(v) = value(c) else { continue };
        buffer = (buffer << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

/// Messages whose `Message-ID` arrived more than once, with how often.
pub fn duplicates(messages: &[Message]) -> HashMap<String, usize> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in messages {
        *counts
            .entry(m.message_id().unwrap_or_default())
            .or_default() += 1;
    }
    counts.retain(|_, n| *n > 1);
    counts
}

/// Pairs of messages with the same `Message-ID` whose sending overlapped
/// in time: two senders with the same row at once.
pub fn overlapping(messages: &[Message]) -> Vec<(Message, Message)> {
    let mut by_id: HashMap<String, Vec<&Message>> = HashMap::new();
    for m in messages {
        by_id
            .entry(m.message_id().unwrap_or_default())
            .or_default()
            .push(m);
    }
    let mut out = Vec::new();
    for same in by_id.values() {
        for (i, a) in same.iter().enumerate() {
            for b in &same[i + 1..] {
                if a.started < b.finished && b.started < a.finished {
                    out.push(((*a).clone(), (*b).clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal client: sends one message and returns the final reply.
    fn send(addr: SocketAddr, message_id: &str) -> io::Result<String> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut out = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        let mut expect = |reader: &mut BufReader<TcpStream>| -> io::Result<String> {
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Err(io::Error::new(ErrorKind::UnexpectedEof, "closed"));
                }
                if line.as_bytes().get(3) != Some(&b'-') {
                    return Ok(line.clone());
                }
            }
        };
        expect(&mut reader)?;
        for command in ["EHLO t", "MAIL FROM:<a@x.io>", "RCPT TO:<b@x.io>", "DATA"] {
            out.write_all(format!("{command}\r\n").as_bytes())?;
            expect(&mut reader)?;
        }
        out.write_all(
            format!(
                "Message-ID: {message_id}\r\nSubject: Hi\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
                 --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n..dotted\r\n\
                 --b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>caf=C3=A9 &amp; =\r\nmore</p>\r\n\
                 --b1--\r\n.\r\n"
            )
            .as_bytes(),
        )?;
        expect(&mut reader)
    }

    #[test]
    fn records_decodes_and_answers_as_told() {
        let sink = Sink::with(|m, before| match m.message_id().as_deref() {
            Some("<perm@x>") => Action::Permanent,
            Some("<temp@x>") if before == 0 => Action::Temporary,
            Some("<drop@x>") => Action::DropAfterData,
            _ => Action::Accept,
        })
        .unwrap();
        assert!(send(sink.addr(), "<ok@x>").unwrap().starts_with("250"));
        assert!(send(sink.addr(), "<perm@x>").unwrap().starts_with("550"));
        assert!(send(sink.addr(), "<temp@x>").unwrap().starts_with("421"));
        assert!(send(sink.addr(), "<temp@x>").unwrap().starts_with("250"));
        assert!(send(sink.addr(), "<drop@x>").is_err());
        let all = sink.messages();
        assert_eq!(all.len(), 5);
        assert_eq!(sink.accepted().len(), 2);
        let first = &all[0];
        assert_eq!(first.rcpt_to, ["b@x.io"]);
        assert_eq!(first.mail_from, "a@x.io");
        assert_eq!(first.subject().as_deref(), Some("Hi"));
        assert_eq!(first.part("text/plain").as_deref(), Some(".dotted"));
        assert_eq!(
            first.part("text/html").as_deref(),
            Some("<p>café &amp; more</p>")
        );
        assert_eq!(duplicates(&all).get("<temp@x>"), Some(&2));
        assert!(overlapping(&all).is_empty());
        assert_eq!(sink.connections(), 5);
    }

    #[test]
    fn a_stall_answers_nothing_until_the_client_hangs_up() {
        let sink = Sink::with(|_, _| Action::Stall).unwrap();
        let started = Instant::now();
        let stream = TcpStream::connect(sink.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        for command in ["HELO t", "MAIL FROM:<a@x.io>", "RCPT TO:<b@x.io>", "DATA"] {
            out.write_all(format!("{command}\r\n").as_bytes()).unwrap();
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
        out.write_all(b"Subject: s\r\n\r\nbody\r\n.\r\n").unwrap();
        line.clear();
        let err = reader.read_line(&mut line).unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut
        ));
        drop((out, reader));
        sink.wait_for(Duration::from_secs(5), "the stalled message", |m| {
            m.len() == 1
        });
        assert!(started.elapsed() < MAX_STALL);
    }

    #[test]
    fn decoders() {
        assert_eq!(decode_base64("Y2Fmw6k="), "café".as_bytes());
        assert_eq!(decode_quoted_printable("a=3Db=\r\nc"), b"a=bc");
    }
}
