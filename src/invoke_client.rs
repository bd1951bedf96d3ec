//! `runlambda invoke`: a small Invoke API client, so a user can call a function without an AWS
//! SDK: prints the answer, and with `--log-tail` the decoded log.

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::api::wire;
use crate::{Error, Result};

/// What came back from an invocation.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub function_error: Option<String>,
    pub log: Option<String>,
}

/// Invokes `name` at `endpoint` (`http://host:port`) with `payload`.
pub fn invoke(endpoint: &str, name: &str, payload: Vec<u8>, log_tail: bool) -> Result<Answer> {
    let fail = |source: std::io::Error| Error::Io {
        what: format!("invoke {name} at {endpoint}"),
        source,
    };
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| {
            fail(std::io::Error::other(
                "the endpoint must start with http://",
            ))
        })?
        .trim_end_matches('/')
        .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(fail)?;
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(fail)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(std::io::Error::other(e)))?;
        tokio::spawn(connection);
        let mut request = Request::post(format!("{}{name}/invocations", wire::INVOKE_PREFIX))
            .header(hyper::header::HOST, &authority);
        if log_tail {
            request = request.header(wire::LOG_TYPE, "Tail");
        }
        let request = request
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| fail(std::io::Error::other(e)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail(std::io::Error::other(e)))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let function_error = header(wire::FUNCTION_ERROR);
        let log = header(wire::LOG_RESULT)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(std::io::Error::other(e)))?
            .to_bytes();
        Ok(Answer {
            status,
            body,
            function_error,
            log,
        })
    })
}
