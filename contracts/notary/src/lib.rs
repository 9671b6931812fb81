//! Evidence notarization: register a document's hash with metadata; anyone
//! can look it up and see who registered it, when. A hash registers once.
#![no_std]

use tongtian_contract_sdk::{self as sdk, String, Value};

fn key(hash: &[u8]) -> sdk::Vec<u8> {
    let mut k = sdk::vec![b'd'];
    k.extend_from_slice(hash);
    k
}

#[no_mangle]
pub extern "C" fn call() {
    let input = sdk::input();
    match input.method.as_str() {
        // register(hash: bytes, metadata: string)
        "register" => {
            let hash = sdk::arg_bytes(&input, 0);
            let metadata = sdk::arg_str(&input, 1);
            if hash.is_empty() || hash.len() > 64 {
                sdk::revert("hash must be 1 to 64 bytes");
            }
            if metadata.len() > 4096 {
                sdk::revert("metadata longer than 4096 bytes");
            }
            let k = key(&hash);
            if sdk::get(&k).is_some() {
                sdk::revert("duplicate: this hash is already registered");
            }
            let registrant = sdk::caller();
            let record = Value::Map(sdk::vec![
                (String::from("hash"), Value::Bytes(hash.clone())),
                (String::from("metadata"), Value::Str(metadata)),
                (String::from("registrant"), Value::Bytes(registrant.to_vec())),
                (String::from("height"), Value::Int(sdk::height() as u128)),
                (String::from("timestamp_ms"), Value::Int(sdk::timestamp_ms() as u128)),
            ]);
            sdk::set_value(&k, &record);
            let count = sdk::get_value(b"count").and_then(|v| v.as_u128()).unwrap_or(0) + 1;
            sdk::set_value(b"count", &Value::Int(count));
            sdk::emit(
                "registered",
                &[("hash", sdk::hex(&hash)), ("registrant", sdk::hex(&registrant))],
            );
            sdk::ret(&record);
        }
        // get(hash: bytes)
        "get" => match sdk::get_value(&key(&sdk::arg_bytes(&input, 0))) {
            Some(record) => sdk::ret(&record),
            None => sdk::revert("not found"),
        },
        "count" => sdk::ret(&sdk::get_value(b"count").unwrap_or(Value::Int(0))),
        _ => sdk::revert("unknown method"),
    }
}
