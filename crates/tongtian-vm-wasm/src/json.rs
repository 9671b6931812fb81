//! JSON for WASM contract values, for the CLI and tests: `--args` arrays
//! become a call's [`Input`], and returned values become JSON again.
//!
//! JSON to values: `true`/`false` are booleans, non-negative integers are
//! integers, `"0x..."` strings of even length are bytes (an address is 20
//! of them), other strings are strings, arrays are lists and objects maps.
//! Values to JSON reverses that; integers above 2^53 become decimal strings
//! so JavaScript readers lose nothing.

use serde_json::Value as Json;
use tongtian_contract_sdk::{Input, Value};

/// A JSON value that has no contract value.
#[derive(Debug, thiserror::Error)]
#[error("argument {path}: {reason}")]
pub struct JsonArgError {
    /// Where in the arguments (`0`, `2.name`, ...).
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Convert one JSON value.
pub fn from_json(j: &Json, path: &str) -> Result<Value, JsonArgError> {
    let err = |reason: &str| JsonArgError {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    Ok(match j {
        Json::Null => return Err(err("null has no contract value")),
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_u64() {
            Some(u) => Value::Int(u as u128),
            None => {
                return Err(err(
                    "numbers must be non-negative integers (use a string for big ones)",
                ))
            }
        },
        Json::String(s) => match s.strip_prefix("0x") {
            Some(h) if h.len() % 2 == 0 && h.bytes().all(|c| c.is_ascii_hexdigit()) => {
                Value::Bytes(hex::decode(h).map_err(|e| err(&e.to_string()))?)
            }
            _ => Value::Str(s.clone()),
        },
        Json::Array(xs) => Value::List(
            xs.iter()
                .enumerate()
                .map(|(i, x)| from_json(x, &format!("{path}.{i}")))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(kvs) => Value::Map(
            kvs.iter()
                .map(|(k, v)| Ok((k.clone(), from_json(v, &format!("{path}.{k}"))?)))
                .collect::<Result<_, JsonArgError>>()?,
        ),
    })
}

/// Encode `method(args)` where `args` is a JSON array (or null for none).
pub fn encode_input(method: &str, args: &Json) -> Result<Vec<u8>, JsonArgError> {
    let list = match args {
        Json::Null => Vec::new(),
        Json::Array(xs) => xs
            .iter()
            .enumerate()
            .map(|(i, x)| from_json(x, &i.to_string()))
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(JsonArgError {
                path: "(all)".into(),
                reason: "arguments must be a JSON array".into(),
            })
        }
    };
    Ok(Input::encode(method, &list))
}

/// A contract value as JSON.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) if *i <= (1u128 << 53) => Json::from(*i as u64),
        Value::Int(i) => Json::String(i.to_string()),
        Value::Str(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(const_hex::encode_prefixed(b)),
        Value::List(xs) => Json::Array(xs.iter().map(to_json).collect()),
        Value::Map(kvs) => Json::Object(kvs.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

/// A call's output bytes as JSON (empty output is `null`).
pub fn output_to_json(out: &[u8]) -> Result<Json, String> {
    if out.is_empty() {
        return Ok(Json::Null);
    }
    Value::decode(out)
        .map(|v| to_json(&v))
        .map_err(|_| "output is not a contract value".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_values() {
        let j = json!([true, 7, "0xabcd", "text", [1, {"k": "v"}], "340282366920938463463374607431768211455"]);
        let input = encode_input("m", &j).unwrap();
        let decoded = Input::decode(&input).unwrap();
        assert_eq!(decoded.method, "m");
        assert_eq!(decoded.args[2], Value::Bytes(vec![0xab, 0xcd]));
        assert_eq!(decoded.args[5].as_u128(), Some(u128::MAX));
        let back = to_json(&Value::List(decoded.args));
        assert_eq!(back.as_array().unwrap()[..5], j.as_array().unwrap()[..5]);
        assert!(encode_input("m", &json!([null])).is_err());
        assert!(encode_input("m", &json!([-1])).is_err());
        assert!(encode_input("m", &json!({"a": 1})).is_err());
        assert_eq!(to_json(&Value::Int(1 << 60)), json!("1152921504606846976"));
    }
}
