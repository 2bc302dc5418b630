//! Limits end to end: 2,000 silent connections while signed requests still answer promptly;
//! a half-sent header and a half-sent body closed by their timeouts (and logged); the
//! connection cap; SIGTERM draining an in-flight request and exiting within the grace period.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ops_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ops_support::{Ops, read_response, roundtrip, signed_raw};

/// True if the peer closed `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 256];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn two_thousand_silent_connections_do_not_starve_signed_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Ops::start(
        &tmp.path().join("data"),
        &["--listen", "127.0.0.1:0", "--header-read-timeout", "3s"],
        &[],
    );
    let addr = server.addr.clone();
    let mut silent = Vec::with_capacity(2000);
    for _ in 0..2000 {
        silent.push(TcpStream::connect(&addr).unwrap());
    }
    // Signed requests on fresh connections answer promptly while all 2,000 are open.
    let t = Instant::now();
    for i in 0..20 {
        let one = Instant::now();
        let (status, body) = roundtrip(&addr, &signed_raw(&addr, "ListKeys", "{}"));
        assert_eq!(status, 200, "request {i}: {body}");
        assert!(
            one.elapsed() < Duration::from_secs(1),
            "request {i} took {:?}",
            one.elapsed()
        );
    }
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "20 requests took {:?}",
        t.elapsed()
    );
    // The silent connections are closed by the header-read timeout, and it is logged.
    let mut closed = 0;
    for s in silent.iter_mut().take(50) {
        if closed_within(s, Duration::from_secs(6)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 50);
    assert!(server.wait_log(
        "request header not complete within the header-read timeout",
        Duration::from_secs(2)
    ));
}

#[test]
fn half_sent_header_and_half_sent_body_are_closed_by_their_timeouts() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Ops::start(
        &tmp.path().join("data"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--header-read-timeout",
            "1s",
            "--body-timeout",
            "1s",
            "--idle-timeout",
            "2s",
        ],
        &[],
    );
    let addr = server.addr.clone();

    // Half a header: closed after about a second.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Tar")
        .unwrap();
    let t = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(4)));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(server.wait_log("header-read timeout", Duration::from_secs(2)));

    // A header trickled byte by byte still has one deadline for the whole header.
    let mut s = TcpStream::connect(&addr).unwrap();
    let t = Instant::now();
    let mut closed = false;
    for b in
        b"POST / HTTP/1.1\r\nHost: slowloris\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter()
    {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if t.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    assert!(closed || closed_within(&mut s, Duration::from_secs(1)));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A complete, signed header but half the body: 408 and the connection closed.
    let raw = signed_raw(&addr, "ListKeys", r#"{"Limit": 10}"#);
    let cut = raw.len() - 5;
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&raw[..cut]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    let t = Instant::now();
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("RequestTimeoutException"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(closed_within(&mut s, Duration::from_secs(2)));
    assert!(server.wait_log("body timeout", Duration::from_secs(2)));

    // A keep-alive connection: answered, then closed after the idle timeout.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&signed_raw(&addr, "ListKeys", "{}")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    // A second request on it well inside the idle timeout works.
    std::thread::sleep(Duration::from_millis(500));
    s.write_all(&signed_raw(&addr, "ListKeys", "{}")).unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    let t = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert!(server.wait_log("closing idle keep-alive connection", Duration::from_secs(2)));
}

#[test]
fn the_connection_cap_closes_extra_connections_and_logs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Ops::start(
        &tmp.path().join("data"),
        &["--listen", "127.0.0.1:0", "--max-connections", "20"],
        &[],
    );
    let addr = server.addr.clone();
    let held: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    // Give the accept loop time to take all 20.
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(&addr).unwrap();
    assert!(closed_within(&mut extra, Duration::from_secs(2)));
    assert!(server.wait_log("connection limit reached", Duration::from_secs(2)));
    drop(held);
    // Slots come back when the connections close.
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = roundtrip(&addr, &signed_raw(&addr, "ListKeys", "{}"));
    assert_eq!(status, 200);
}

#[test]
fn sigterm_drains_an_in_flight_request_and_exits_within_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Ops::start(
        &data,
        &[
            "--listen",
            "127.0.0.1:0",
            "--shutdown-grace",
            "3s",
            "--body-timeout",
            "30s",
        ],
        &[],
    );
    let addr = server.addr.clone();

    // In flight: the header and part of the body are sent when SIGTERM arrives.
    let raw = signed_raw(&addr, "CreateKey", r#"{"Description": "drained"}"#);
    let cut = raw.len() - 4;
    let mut inflight = TcpStream::connect(&addr).unwrap();
    inflight.write_all(&raw[..cut]).unwrap();
    // Idle and half-sent-header connections do not hold shutdown up.
    let _idle = TcpStream::connect(&addr).unwrap();
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(b"POST / HTTP/1.1\r\nHost:").unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let t = Instant::now();
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    // New connections are no longer accepted.
    assert!(
        TcpStream::connect(&addr).is_err() || {
            let mut c = TcpStream::connect(&addr).unwrap();
            closed_within(&mut c, Duration::from_secs(1))
        }
    );
    // The in-flight request completes and is answered.
    inflight.write_all(&raw[cut..]).unwrap();
    inflight
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let (status, body) = read_response(&mut inflight);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("drained"), "{body}");
    let st = server
        .wait_exit(Duration::from_secs(4))
        .expect("server still running after SIGTERM");
    assert!(st.success(), "{st:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A request that never completes cannot hold the process past the grace period.
    let mut server = Ops::start(
        &data,
        &[
            "--listen",
            "127.0.0.1:0",
            "--shutdown-grace",
            "1s",
            "--body-timeout",
            "30s",
        ],
        &[],
    );
    let addr = server.addr.clone();
    let raw = signed_raw(&addr, "ListKeys", r#"{"Limit": 5}"#);
    let mut stuck = TcpStream::connect(&addr).unwrap();
    stuck.write_all(&raw[..raw.len() - 3]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    server.signal("TERM");
    let st = server
        .wait_exit(Duration::from_secs(4))
        .expect("a half-sent request kept the server running after the grace period");
    assert!(st.success());
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(server.wait_log("grace period over", Duration::from_secs(1)));
}

#[test]
fn a_header_started_on_an_idle_keep_alive_connection_gets_the_header_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Ops::start(
        &tmp.path().join("data"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--header-read-timeout",
            "1s",
            "--idle-timeout",
            "20s",
        ],
        &[],
    );
    let addr = server.addr.clone();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&signed_raw(&addr, "ListKeys", "{}")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    // Idle well past the header timeout: still open (the idle timeout applies).
    std::thread::sleep(Duration::from_millis(1500));
    // Then half a header: closed about a second later, not after the idle timeout.
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let t = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
