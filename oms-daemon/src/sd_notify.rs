//! systemd's readiness protocol (sd_notify(3)): under a `Type=notify` unit
//! systemd passes a unix datagram socket in `$NOTIFY_SOCKET`, and the
//! service sends `READY=1` when it can serve and `STOPPING=1` when it starts
//! shutting down. Without the variable (a shell, a test, another service
//! manager) every call does nothing.
//!
//! A few lines over `std::os::unix::net::UnixDatagram` instead of a crate:
//! the protocol is one datagram of `KEY=VALUE` lines to a path, or to an
//! abstract socket when the address starts with `@`.

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to systemd.
/// `Ok(false)` when there is no `$NOTIFY_SOCKET` to send to.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(address) = std::env::var_os("NOTIFY_SOCKET").filter(|a| !a.is_empty()) else {
        return Ok(false);
    };
    send(&address, state)?;
    Ok(true)
}

/// Like [`notify`], logging instead of failing: readiness is a courtesy to
/// the service manager, never a reason to stop serving.
pub fn notify_or_log(state: &str) {
    match notify(state) {
        Ok(true) => tracing::debug!(state, "notified systemd"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, state, "cannot notify systemd ($NOTIFY_SOCKET)"),
    }
}

#[cfg(unix)]
fn send(address: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;

    let socket = UnixDatagram::unbound()?;
    let bytes = address.as_bytes();
    let sent = match bytes.first() {
        Some(b'/') => socket.send_to(state.as_bytes(), address)?,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(b'@') => {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            let abstract_address = std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])?;
            socket.send_to_addr(state.as_bytes(), &abstract_address)?
        }
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("unsupported NOTIFY_SOCKET address {address:?}"),
            ));
        }
    };
    if sent != state.len() {
        return Err(std::io::Error::other("the notification was truncated"));
    }
    Ok(())
}

#[cfg(not(unix))]
fn send(_address: &std::ffi::OsStr, _state: &str) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "NOTIFY_SOCKET needs unix sockets",
    ))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    use super::*;

    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_one_datagram_to_a_socket_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind");
        send(path.as_os_str(), "READY=1\nSTATUS=serving").expect("send");
        assert_eq!(receive(&socket), "READY=1\nSTATUS=serving");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket_named_with_an_at_sign() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("oms-notify-test-{}", std::process::id());
        let address =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
        let socket = UnixDatagram::bind_addr(&address).expect("bind");
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").expect("send");
        assert_eq!(receive(&socket), "STOPPING=1");
    }

    #[test]
    fn refuses_other_kinds_of_address() {
        let err = send(std::ffi::OsStr::new("vsock:2:1234"), "READY=1").expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nobody-listens.sock");
        assert!(send(missing.as_os_str(), "READY=1").is_err());
    }
}
