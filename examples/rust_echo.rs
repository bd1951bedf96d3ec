//! A Lambda function on the AWS `lambda_runtime` crate, unmodified: it answers every invoke with
//! `{"echo": <event>, "requestId": "<id>"}`.
//!
//! `cargo build --release --example rust_echo` builds `target/<triple>/release/examples/rust_echo`
//! (statically linked, as everything here: see `.cargo/config.toml`); copy it
//! as `bootstrap` into a function directory (the `provided` layout) and serve it with
//! `runlambda run DIR`. It only works inside a Lambda environment: the crate reads
//! `AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` and
//! `AWS_LAMBDA_FUNCTION_VERSION` at start and panics without them.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({ "echo": event.payload, "requestId": event.context.request_id }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(echo)).await
}
