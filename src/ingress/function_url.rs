//! Ingress: the Lambda function URL's request and response, payload format 2.0 (also API
//! Gateway HTTP APIs'): `rawPath`, `rawQueryString`, `headers`, `requestContext.http.method`,
//! `body`, `isBase64Encoded` in; `statusCode`, `headers`, `body` out.
//! See <https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html>.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::{PushRequest, PushResponse};

/// Whether a Lambda payload is a function URL request (payload format 2.0).
pub fn is_function_url(payload: &Value) -> bool {
    payload.get("version").and_then(Value::as_str) == Some("2.0")
        && payload.get("rawPath").is_some()
        && payload.pointer("/requestContext/http/method").is_some()
}

/// The request a function URL payload carries.
pub fn from_function_url(payload: &Value) -> Result<PushRequest, String> {
    let text = |pointer: &str| payload.pointer(pointer).and_then(Value::as_str);
    let method = text("/requestContext/http/method")
        .ok_or("requestContext.http.method is missing")?
        .to_ascii_uppercase();
    let headers = match payload.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(headers)) => headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.to_ascii_lowercase(), value.as_str()?.to_owned()))
            })
            .collect(),
        Some(_) => return Err("headers is not an object".to_owned()),
    };
    let body = match payload.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(body)) if payload.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| format!("body is marked base64 but is not: {e}"))?
        }
        Some(Value::String(body)) => body.clone().into_bytes(),
        Some(_) => return Err("body is not a string".to_owned()),
    };
    Ok(PushRequest {
        method,
        path: text("/rawPath").unwrap_or("/").to_owned(),
        query: text("/rawQueryString").unwrap_or_default().to_owned(),
        headers,
        body,
    })
}

/// The function's answer to a function URL request.
pub fn to_function_url(response: &PushResponse) -> Value {
    let mut headers = Map::new();
    headers.insert("content-type".to_owned(), json!("application/json"));
    for (name, value) in &response.headers {
        headers.insert((*name).to_owned(), json!(value));
    }
    json!({
        "statusCode": response.status,
        "headers": headers,
        "body": response.body,
        "isBase64Encoded": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_function_url_sample_is_read_whole() {
        let payload: Value =
            serde_json::from_str(include_str!("../../events/function-url-gcs-push.json")).unwrap();
        assert!(is_function_url(&payload));
        let request = from_function_url(&payload).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/");
        assert!(
            request
                .header("authorization")
                .unwrap()
                .starts_with("Bearer ")
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert!(body["message"]["attributes"]["objectId"].is_string());
    }

    #[test]
    fn base64_bodies_are_decoded_and_bad_ones_refused() {
        let mut payload = json!({
            "version": "2.0", "rawPath": "/p", "rawQueryString": "token=a%2Bb",
            "headers": {"Content-Type": "application/json"},
            "requestContext": {"http": {"method": "post"}},
            "body": "eyJhIjoxfQ==", "isBase64Encoded": true
        });
        let request = from_function_url(&payload).unwrap();
        assert_eq!(request.body, br#"{"a":1}"#);
        assert_eq!(request.method, "POST");
        assert_eq!(request.query, "token=a%2Bb");
        assert_eq!(request.header("content-type"), Some("application/json"));
        payload["body"] = json!("not base64!");
        assert!(from_function_url(&payload).unwrap_err().contains("base64"));
    }

    #[test]
    fn answers_carry_status_headers_and_body() {
        let response = PushResponse {
            status: 405,
            body: "{}".into(),
            headers: vec![("allow", "POST".into())],
        };
        let answer = to_function_url(&response);
        assert_eq!(answer["statusCode"], 405);
        assert_eq!(answer["headers"]["allow"], "POST");
        assert_eq!(answer["headers"]["content-type"], "application/json");
        assert_eq!(answer["body"], "{}");
    }
}
