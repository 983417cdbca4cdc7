//! What an HTTP request and response are to a deployment, as plain values that travel to a
//! replica on any node: the raw [`Request`], typed JSON in and out ([`Json`]), bytes and text,
//! and the items of a streamed response. The conversions are the user's side of the proxy:
//! [`FromRequest`] for what an `#[http]` method takes, [`IntoResponse`] for what it returns,
//! [`IntoChunk`] for each item a streaming one yields.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// An HTTP request as the proxy received it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The whole path, route prefix included (`/classify/v1`).
    pub path: String,
    /// The query string without its `?` (empty if none).
    pub query: String,
    /// The headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a query parameter (`?name=value`), not percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An HTTP response: status, headers and body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers to send (content-type among them).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with this status, content type and body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// 200 with a JSON body.
    pub fn json<T: Serialize>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(200, "application/json", body),
            Err(e) => Response::error(500, format!("the response could not be encoded: {e}")),
        }
    }

    /// 200 with a plain-text body.
    pub fn text(text: impl Into<String>) -> Self {
        Response::new(200, "text/plain; charset=utf-8", text.into().into_bytes())
    }

    /// 200 with a binary body.
    pub fn bytes(body: impl Into<Vec<u8>>) -> Self {
        Response::new(200, "application/octet-stream", body)
    }

    /// An error status with its message as a plain-text body.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        let mut body = message.into().into_bytes();
        body.push(b'\n');
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    /// The same response with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Typed JSON: as a parameter, the body parsed (a body that does not parse answers 400
/// with the parser's message); as a result, the value written as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Json<T>(pub T);

/// What an `#[http]` method can take: built from the request, or the response to send
/// instead (400 for a body that does not parse).
pub trait FromRequest: Sized {
    /// Builds the value from the request.
    fn from_request(request: Request) -> Result<Self, Response>;
}

impl FromRequest for Request {
    fn from_request(request: Request) -> Result<Self, Response> {
        Ok(request)
    }
}

impl<T: DeserializeOwned> FromRequest for Json<T> {
    fn from_request(request: Request) -> Result<Self, Response> {
        serde_json::from_slice(&request.body)
            .map(Json)
            .map_err(|e| Response::error(400, format!("malformed JSON body: {e}")))
    }
}

impl FromRequest for String {
    fn from_request(request: Request) -> Result<Self, Response> {
        String::from_utf8(request.body)
            .map_err(|e| Response::error(400, format!("the body is not UTF-8 text: {e}")))
    }
}

impl FromRequest for Vec<u8> {
    fn from_request(request: Request) -> Result<Self, Response> {
        Ok(request.body)
    }
}

/// What an `#[http]` method can return.
pub trait IntoResponse {
    /// The response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        Response::json(&self.0)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::bytes(self)
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(200, "text/plain; charset=utf-8", Vec::new())
    }
}

/// An error answers 500 with its message.
impl<R: IntoResponse, E: std::fmt::Display> IntoResponse for Result<R, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => Response::error(500, e.to_string()),
        }
    }
}

/// One item of a streamed response, as a streaming `#[http]` method yields it: the bytes of
/// a chunk, or (first and alone) a whole response that replaces the stream (the request
/// did not parse).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamItem {
    /// A whole response instead of a stream.
    Head(Response),
    /// A chunk of the body (one server-sent event when the client asked for those).
    Chunk(Vec<u8>),
}

/// What a streaming `#[http]` method can yield: text and bytes go as they are, [`Json`] as
/// one line of JSON each (newline-delimited JSON).
pub trait IntoChunk {
    /// The chunk's bytes.
    fn into_chunk(self) -> Vec<u8>;
}

impl IntoChunk for String {
    fn into_chunk(self) -> Vec<u8> {
        self.into_bytes()
    }
}

impl IntoChunk for Vec<u8> {
    fn into_chunk(self) -> Vec<u8> {
        self
    }
}

impl<T: Serialize> IntoChunk for Json<T> {
    fn into_chunk(self) -> Vec<u8> {
        let mut line = serde_json::to_vec(&self.0)
            .unwrap_or_else(|e| format!("{{\"error\":\"unencodable item: {e}\"}}").into_bytes());
        line.push(b'\n');
        line
    }
}

/// The items of a server-sent event for one chunk: each line as a `data:` line, then a blank
/// line.
pub fn sse_event(chunk: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(chunk);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let mut out = Vec::with_capacity(text.len() + 8);
    for line in text.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_is_a_400_naming_the_parser_error() {
        let req = Request {
            body: b"{\"x\": ".to_vec(),
            ..Default::default()
        };
        let err = Json::<serde_json::Value>::from_request(req).unwrap_err();
        assert_eq!(err.status, 400);
        let text = String::from_utf8(err.body).unwrap();
        assert!(text.contains("EOF while parsing"), "{text}");
    }

    #[test]
    fn queries_and_headers_are_found() {
        let req = Request {
            query: "a=1&flag&b=two".into(),
            headers: vec![("content-type".into(), "text/plain".into())],
            ..Default::default()
        };
        assert_eq!(req.query_param("b"), Some("two"));
        assert_eq!(req.query_param("flag"), Some(""));
        assert_eq!(req.query_param("c"), None);
        assert_eq!(req.header("Content-Type"), Some("text/plain"));
    }

    #[test]
    fn an_error_result_is_a_500_with_its_message() {
        let r: Result<Json<u32>, String> = Err("no model".into());
        let resp = r.into_response();
        assert_eq!((resp.status, resp.body), (500, b"no model\n".to_vec()));
        assert_eq!(Ok::<_, String>(Json(3)).into_response().body, b"3".to_vec());
    }

    #[test]
    fn sse_events_prefix_each_line() {
        assert_eq!(sse_event(b"a\nb\n"), b"data: a\ndata: b\n\n".to_vec());
        assert_eq!(sse_event(b"{}"), b"data: {}\n\n".to_vec());
    }
}
