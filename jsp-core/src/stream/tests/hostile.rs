//! Hostile or broken peers, fed frames directly: each rule they break closes the connection
//! with the matching typed error (and the frame type that broke it).

use bytes::Bytes;

use super::super::{Dir, StreamEvent, StreamId, StreamLimits, Streams};
use crate::coding::Writer;
use crate::error::{TransportError, TransportErrorCode};
use crate::frame::{self, Frame};
use crate::side::Side;

/// Hands `frame` to `s` as a peer would (encoded, then decoded from a payload).
fn feed(s: &mut Streams, frame: Frame<'_>) -> Result<(), TransportError> {
    let mut buf = vec![0u8; 4096];
    let mut w = Writer::new(&mut buf);
    frame.encode(&mut w).unwrap();
    let n = w.position();
    let payload = Bytes::copy_from_slice(&buf[..n]);
    for f in frame::iter(&payload) {
        s.on_frame(&f.unwrap(), &payload, false, crate::time::Instant::ZERO)?;
    }
    Ok(())
}

fn code(result: Result<(), TransportError>) -> TransportErrorCode {
    result.expect_err("the peer broke a rule").code
}

fn data(id: StreamId, offset: u64, bytes: &[u8], fin: bool) -> Frame<'_> {
    Frame::Stream {
        id,
        offset,
        fin,
        data: bytes,
    }
}

fn small_server() -> Streams {
    let limits = StreamLimits {
        receive_window: 1500,
        stream_receive_window: 1000,
        max_stream_receive_window: 1000,
        max_concurrent_bidi: 2,
        ..StreamLimits::default()
    };
    Streams::new(Side::Server, limits)
}

#[test]
fn a_peer_overrunning_the_stream_or_connection_window_gets_flow_control_error() {
    let bytes = [7u8; 1000];
    let (s0, s1) = (
        StreamId::new(Side::Client, Dir::Bi, 0),
        StreamId::new(Side::Client, Dir::Bi, 1),
    );
    let mut server = small_server();
    let err = feed(&mut server, data(s0, 900, &bytes[..101], false)).unwrap_err();
    assert_eq!(err.code, TransportErrorCode::FLOW_CONTROL_ERROR);
    assert_eq!(err.frame_type.map(frame::ty::is_stream), Some(true));

    let mut server = small_server();
    feed(&mut server, data(s0, 0, &bytes, false)).unwrap();
    feed(&mut server, data(s1, 0, &bytes[..500], false)).unwrap();
    let over = feed(&mut server, data(s1, 500, &bytes[..1], false));
    assert_eq!(code(over), TransportErrorCode::FLOW_CONTROL_ERROR);

    let mut server = small_server();
    let reset = Frame::ResetStream {
        id: s0,
        error_code: 1,
        final_size: 1001,
    };
    assert_eq!(
        code(feed(&mut server, reset)),
        TransportErrorCode::FLOW_CONTROL_ERROR
    );
}

#[test]
fn a_changed_final_size_gets_final_size_error() {
    let s0 = StreamId::new(Side::Client, Dir::Bi, 0);
    let bytes = [1u8; 20];
    let mut server = small_server();
    feed(&mut server, data(s0, 0, &bytes[..10], true)).unwrap();
    feed(&mut server, data(s0, 0, &bytes[..10], true)).unwrap();
    let moved = feed(&mut server, data(s0, 0, &bytes[..12], true));
    assert_eq!(code(moved), TransportErrorCode::FINAL_SIZE_ERROR);
    let beyond = feed(&mut server, data(s0, 10, &bytes[..1], false));
    assert_eq!(code(beyond), TransportErrorCode::FINAL_SIZE_ERROR);
    let reset = Frame::ResetStream {
        id: s0,
        error_code: 0,
        final_size: 11,
    };
    assert_eq!(
        code(feed(&mut server, reset)),
        TransportErrorCode::FINAL_SIZE_ERROR
    );

    let mut server = small_server();
    feed(&mut server, data(s0, 0, &bytes, false)).unwrap();
    let shrunk = feed(&mut server, data(s0, 0, &bytes[..5], true));
    assert_eq!(code(shrunk), TransportErrorCode::FINAL_SIZE_ERROR);
}

#[test]
fn frames_on_the_wrong_side_of_a_stream_get_stream_state_error() {
    let mut server = small_server();
    let own_uni = StreamId::new(Side::Server, Dir::Uni, 0);
    let state = TransportErrorCode::STREAM_STATE_ERROR;
    assert_eq!(
        code(feed(&mut server, data(own_uni, 0, b"x", false))),
        state
    );
    let peer_uni = StreamId::new(Side::Client, Dir::Uni, 0);
    let max = Frame::MaxStreamData {
        id: peer_uni,
        max: 10,
    };
    assert_eq!(code(feed(&mut server, max)), state);
    let unopened = Frame::StopSending {
        id: StreamId::new(Side::Server, Dir::Bi, 3),
        error_code: 0,
    };
    assert_eq!(code(feed(&mut server, unopened)), state);
}

#[test]
fn a_peer_opening_beyond_max_streams_gets_stream_limit_error() {
    let mut server = small_server();
    let second = StreamId::new(Side::Client, Dir::Bi, 1);
    feed(&mut server, data(second, 0, b"hi", false)).unwrap();
    assert_eq!(
        server.poll_event(),
        Some(StreamEvent::Opened { dir: Dir::Bi })
    );
    assert_eq!(
        server.accept(Dir::Bi),
        Some(StreamId::new(Side::Client, Dir::Bi, 0))
    );
    assert_eq!(server.accept(Dir::Bi), Some(second));
    assert_eq!(server.accept(Dir::Bi), None);
    let third = StreamId::new(Side::Client, Dir::Bi, 2);
    let err = feed(&mut server, data(third, 0, b"hi", false));
    assert_eq!(code(err), TransportErrorCode::STREAM_LIMIT_ERROR);
}
