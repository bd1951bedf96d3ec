//! The AWS event-stream framing of `InvokeWithResponseStream` answers: each message is a prelude
//! (total and header lengths, with a CRC), string headers (`:event-type`, `:message-type`,
//! `:content-type`), the payload, and a CRC of the whole message — what AWS SDKs parse.

use bytes::{BufMut, Bytes, BytesMut};

/// The largest payload one `PayloadChunk` carries.
pub const CHUNK: usize = 64 * 1024;

/// One event-stream message with string headers.
pub fn message(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut encoded_headers = BytesMut::new();
    for (name, value) in headers {
        encoded_headers.put_u8(name.len() as u8);
        encoded_headers.put_slice(name.as_bytes());
        // Header value type 7: a string with a 16-bit length.
        encoded_headers.put_u8(7);
        encoded_headers.put_u16(value.len() as u16);
        encoded_headers.put_slice(value.as_bytes());
    }
    let total = 12 + encoded_headers.len() + payload.len() + 4;
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(total as u32);
    out.put_u32(encoded_headers.len() as u32);
    out.put_u32(crc32fast::hash(&out[..8]));
    out.put_slice(&encoded_headers);
    out.put_slice(payload);
    out.put_u32(crc32fast::hash(&out));
    out.freeze()
}

/// A `PayloadChunk` event carrying part of the function's response.
pub fn payload_chunk(bytes: &[u8]) -> Bytes {
    message(
        &[
            (":event-type", "PayloadChunk"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        bytes,
    )
}

/// The closing `InvokeComplete` event: the error, if the function failed, and the log tail.
pub fn invoke_complete(error: Option<(&str, &str)>, log: Option<&str>) -> Bytes {
    let mut body = serde_json::Map::new();
    if let Some((code, details)) = error {
        body.insert("ErrorCode".into(), code.into());
        body.insert("ErrorDetails".into(), details.into());
    }
    if let Some(log) = log {
        body.insert("LogResult".into(), log.into());
    }
    let payload = serde_json::to_vec(&body).expect("json");
    message(
        &[
            (":event-type", "InvokeComplete"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        &payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes one message back: (headers, payload), checking both CRCs.
    fn decode(bytes: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
        let total = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
        let headers_len = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, bytes.len());
        let prelude_crc = u32::from_be_bytes(bytes[8..12].try_into().unwrap());
        assert_eq!(prelude_crc, crc32fast::hash(&bytes[..8]));
        let message_crc = u32::from_be_bytes(bytes[total - 4..].try_into().unwrap());
        assert_eq!(message_crc, crc32fast::hash(&bytes[..total - 4]));
        let mut headers = Vec::new();
        let mut at = 12;
        while at < 12 + headers_len {
            let name_len = bytes[at] as usize;
            let name = String::from_utf8(bytes[at + 1..at + 1 + name_len].to_vec()).unwrap();
            at += 1 + name_len;
            assert_eq!(bytes[at], 7);
            let value_len = u16::from_be_bytes(bytes[at + 1..at + 3].try_into().unwrap()) as usize;
            let value = String::from_utf8(bytes[at + 3..at + 3 + value_len].to_vec()).unwrap();
            at += 3 + value_len;
            headers.push((name, value));
        }
        (headers, bytes[12 + headers_len..total - 4].to_vec())
    }

    #[test]
    fn chunks_round_trip_with_valid_crcs() {
        let (headers, payload) = decode(&payload_chunk(b"hello"));
        assert_eq!(payload, b"hello");
        assert!(headers.contains(&(":event-type".into(), "PayloadChunk".into())));
        assert!(headers.contains(&(":message-type".into(), "event".into())));
    }

    #[test]
    fn the_closing_event_carries_the_error_and_log() {
        let (headers, payload) =
            decode(&invoke_complete(Some(("Unhandled", "boom")), Some("TG9n")));
        assert!(headers.contains(&(":event-type".into(), "InvokeComplete".into())));
        let body: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(body["ErrorCode"], "Unhandled");
        assert_eq!(body["ErrorDetails"], "boom");
        assert_eq!(body["LogResult"], "TG9n");
        let (_, payload) = decode(&invoke_complete(None, None));
        assert_eq!(payload, b"{}");
    }
}
