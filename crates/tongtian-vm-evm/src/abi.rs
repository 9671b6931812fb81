//! Solidity ABI encoding from JSON, for the CLI and tests: `--abi FILE`
//! plus `--method NAME --args JSON` become call data, and return data
//! becomes JSON again.

use alloy_dyn_abi::{DynSolType, DynSolValue, FunctionExt, JsonAbiExt, Specifier};
use alloy_json_abi::Param;
pub use alloy_json_abi::{Function, JsonAbi};
use serde_json::Value;

/// Why arguments could not be encoded or output decoded.
#[derive(Debug, thiserror::Error)]
pub enum AbiError {
    /// The ABI file is not a JSON ABI.
    #[error("invalid ABI: {0}")]
    BadAbi(String),
    /// No function of that name.
    #[error("the ABI has no function `{0}`")]
    NoSuchMethod(String),
    /// Arguments are not a JSON array.
    #[error("arguments must be a JSON array")]
    ArgsNotArray,
    /// No overload takes that many arguments.
    #[error("`{method}` takes {expected} argument(s), got {got}")]
    WrongArity {
        /// The method.
        method: String,
        /// What the ABI says.
        expected: String,
        /// What was given.
        got: usize,
    },
    /// An argument does not fit its parameter's type.
    #[error("argument {index} (`{name}`, {ty}): {reason}")]
    BadArg {
        /// Position.
        index: usize,
        /// Parameter name.
        name: String,
        /// Solidity type.
        ty: String,
        /// Why.
        reason: String,
    },
    /// Return data does not decode.
    #[error("cannot decode output: {0}")]
    BadOutput(String),
}

/// Parse a JSON ABI (a solc `.abi` file).
pub fn parse_abi(json: &str) -> Result<JsonAbi, AbiError> {
    serde_json::from_str(json).map_err(|e| AbiError::BadAbi(e.to_string()))
}

fn values(params: &[Param], args: &[Value]) -> Result<Vec<DynSolValue>, AbiError> {
    params
        .iter()
        .zip(args)
        .enumerate()
        .map(|(index, (p, a))| {
            let bad = |reason: String| AbiError::BadArg {
                index,
                name: p.name.clone(),
                ty: p.ty.clone(),
                reason,
            };
            let ty: DynSolType = p.resolve().map_err(|e| bad(e.to_string()))?;
            let text = match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            ty.coerce_str(&text).map_err(|e| bad(e.to_string()))
        })
        .collect()
}

fn args_array(args: &Value) -> Result<&[Value], AbiError> {
    match args {
        Value::Array(a) => Ok(a),
        Value::Null => Ok(&[]),
        _ => Err(AbiError::ArgsNotArray),
    }
}

/// The overload of `method` taking as many arguments as given.
pub fn function<'a>(
    abi: &'a JsonAbi,
    method: &str,
    arity: usize,
) -> Result<&'a Function, AbiError> {
    let fs = abi
        .function(method)
        .ok_or_else(|| AbiError::NoSuchMethod(method.into()))?;
    fs.iter()
        .find(|f| f.inputs.len() == arity)
        .ok_or_else(|| AbiError::WrongArity {
            method: method.into(),
            expected: fs
                .iter()
                .map(|f| f.inputs.len().to_string())
                .collect::<Vec<_>>()
                .join(" or "),
            got: arity,
        })
}

/// Call data for `method(args...)`.
pub fn encode_call(abi: &JsonAbi, method: &str, args: &Value) -> Result<Vec<u8>, AbiError> {
    let args = args_array(args)?;
    let f = function(abi, method, args.len())?;
    let vals = values(&f.inputs, args)?;
    f.abi_encode_input(&vals)
        .map_err(|e| AbiError::BadOutput(e.to_string()))
}

/// Encoded constructor arguments (appended to the init code).
pub fn encode_constructor(abi: &JsonAbi, args: &Value) -> Result<Vec<u8>, AbiError> {
    let args = args_array(args)?;
    let inputs: &[Param] = abi
        .constructor()
        .map(|c| c.inputs.as_slice())
        .unwrap_or(&[]);
    if inputs.len() != args.len() {
        return Err(AbiError::WrongArity {
            method: "constructor".into(),
            expected: inputs.len().to_string(),
            got: args.len(),
        });
    }
    let vals = values(inputs, args)?;
    Ok(DynSolValue::Tuple(vals).abi_encode_params())
}

/// Decode `method`'s return data to JSON: one value as itself, several as
/// an array.
pub fn decode_output(f: &Function, data: &[u8]) -> Result<Value, AbiError> {
    let vals = f
        .abi_decode_output(data)
        .map_err(|e| AbiError::BadOutput(e.to_string()))?;
    let mut json: Vec<Value> = vals.iter().map(to_json).collect();
    Ok(if json.len() == 1 {
        json.remove(0)
    } else {
        Value::Array(json)
    })
}

/// A decoded ABI value as JSON (integers as decimal strings, bytes and
/// addresses as 0x-hex).
pub fn to_json(v: &DynSolValue) -> Value {
    match v {
        DynSolValue::Bool(b) => Value::Bool(*b),
        DynSolValue::Int(i, _) => Value::String(i.to_string()),
        DynSolValue::Uint(u, _) => Value::String(u.to_string()),
        DynSolValue::FixedBytes(w, n) => Value::String(format!("0x{}", hex::encode(&w[..*n]))),
        DynSolValue::Address(a) => Value::String(format!("{a:#x}")),
        DynSolValue::Bytes(b) => Value::String(format!("0x{}", hex::encode(b))),
        DynSolValue::String(s) => Value::String(s.clone()),
        DynSolValue::Array(xs) | DynSolValue::FixedArray(xs) | DynSolValue::Tuple(xs) => {
            Value::Array(xs.iter().map(to_json).collect())
        }
        other => Value::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ABI: &str = include_str!("../../../contracts/token/Token.abi");

    #[test]
    fn encodes_transfer_like_solidity() {
        let abi = parse_abi(ABI).unwrap();
        let data = encode_call(
            &abi,
            "transfer",
            &json!(["0x00000000000000000000000000000000000000ff", "1000"]),
        )
        .unwrap();
        assert_eq!(hex::encode(&data[..4]), "a9059cbb");
        assert_eq!(data.len(), 4 + 64);
        assert_eq!(data[4 + 31], 0xff);
        assert_eq!(u16::from_be_bytes([data[66], data[67]]), 1000);
    }

    #[test]
    fn wrong_calls_get_specific_errors() {
        let abi = parse_abi(ABI).unwrap();
        assert!(matches!(
            encode_call(&abi, "mint", &json!([])),
            Err(AbiError::NoSuchMethod(_))
        ));
        assert!(matches!(
            encode_call(&abi, "transfer", &json!(["0x01"])),
            Err(AbiError::WrongArity { got: 1, .. })
        ));
        assert!(matches!(
            encode_call(&abi, "transfer", &json!(["not an address", "1"])),
            Err(AbiError::BadArg { index: 0, .. })
        ));
        assert!(matches!(
            encode_call(&abi, "transfer", &json!({"to": 1})),
            Err(AbiError::ArgsNotArray)
        ));
        assert!(parse_abi("{").is_err());
    }
}
