//! Product traceability. A product is registered by its first holder;
//! custody moves only when the current holder hands it over, and inspection
//! results are statements signed by the inspector (checked with the
//! chain's signature suite) and filed by the holder. The full history can
//! be read back.
#![no_std]

use tongtian_contract_sdk::{self as sdk, String, Value, Vec};

/// What an inspector signs: this tag, the product id, a zero byte, the result.
pub const INSPECTION_DOMAIN: &[u8] = b"tongtian/trace/inspection/v1";

fn key(id: &str) -> Vec<u8> {
    let mut k = sdk::vec![b'p'];
    k.extend_from_slice(id.as_bytes());
    k
}

fn load(id: &str) -> Value {
    sdk::get_value(&key(id)).unwrap_or_else(|| sdk::revert("unknown product"))
}

fn holder(p: &Value) -> sdk::Address {
    p.get("holder")
        .and_then(Value::as_address)
        .unwrap_or_else(|| sdk::revert("corrupt product"))
}

fn entry(kind: &str, fields: Vec<(String, Value)>) -> Value {
    let mut all = sdk::vec![
        (String::from("kind"), Value::Str(String::from(kind))),
        (String::from("height"), Value::Int(sdk::height() as u128)),
        (String::from("timestamp_ms"), Value::Int(sdk::timestamp_ms() as u128)),
    ];
    all.extend(fields);
    Value::Map(all)
}

/// Replace `holder` (if given) and append `event` to the product's history.
fn update(id: &str, p: Value, new_holder: Option<sdk::Address>, event: Value) {
    let Value::Map(mut kvs) = p else {
        sdk::revert("corrupt product")
    };
    for (k, v) in kvs.iter_mut() {
        if k == "holder" {
            if let Some(h) = new_holder {
                *v = Value::Bytes(h.to_vec());
            }
        }
        if k == "history" {
            if let Value::List(xs) = v {
                if xs.len() >= 1000 {
                    sdk::revert("history is full");
                }
                xs.push(event.clone());
            }
        }
    }
    sdk::set_value(&key(id), &Value::Map(kvs));
}

#[no_mangle]
pub extern "C" fn call() {
    let input = sdk::input();
    match input.method.as_str() {
        // register(id, description)
        "register" => {
            let id = sdk::arg_str(&input, 0);
            let description = sdk::arg_str(&input, 1);
            if id.is_empty() || id.len() > 128 {
                sdk::revert("product id must be 1 to 128 bytes");
            }
            if sdk::get(&key(&id)).is_some() {
                sdk::revert("duplicate: product already registered");
            }
            let me = sdk::caller();
            let first = entry(
                "registered",
                sdk::vec![(String::from("party"), Value::Bytes(me.to_vec()))],
            );
            let product = Value::Map(sdk::vec![
                (String::from("id"), Value::Str(id.clone())),
                (String::from("description"), Value::Str(description)),
                (String::from("holder"), Value::Bytes(me.to_vec())),
                (String::from("history"), Value::List(sdk::vec![first])),
            ]);
            sdk::set_value(&key(&id), &product);
            sdk::emit("registered", &[("id", id), ("holder", sdk::hex(&me))]);
        }
        // handover(id, to, note): only the holder.
        "handover" => {
            let id = sdk::arg_str(&input, 0);
            let to = sdk::arg_address(&input, 1);
            let note = sdk::arg_str(&input, 2);
            let p = load(&id);
            let from = holder(&p);
            if sdk::caller() != from {
                sdk::revert("only the current holder can hand over custody");
            }
            let e = entry(
                "custody",
                sdk::vec![
                    (String::from("from"), Value::Bytes(from.to_vec())),
                    (String::from("to"), Value::Bytes(to.to_vec())),
                    (String::from("note"), Value::Str(note)),
                ],
            );
            update(&id, p, Some(to), e);
            sdk::emit(
                "custody",
                &[("id", id), ("from", sdk::hex(&from)), ("to", sdk::hex(&to))],
            );
        }
        // inspect(id, result, inspector_public_key, signature): filed by the
        // holder, signed by the inspector.
        "inspect" => {
            let id = sdk::arg_str(&input, 0);
            let result = sdk::arg_str(&input, 1);
            let pk = sdk::arg_bytes(&input, 2);
            let sig = sdk::arg_bytes(&input, 3);
            let p = load(&id);
            if sdk::caller() != holder(&p) {
                sdk::revert("only the current holder files inspections");
            }
            let mut msg = INSPECTION_DOMAIN.to_vec();
            msg.extend_from_slice(id.as_bytes());
            msg.push(0);
            msg.extend_from_slice(result.as_bytes());
            if !sdk::verify(&pk, &msg, &sig) {
                sdk::revert("inspector signature does not verify");
            }
            let inspector = sdk::address_of(&pk);
            let e = entry(
                "inspection",
                sdk::vec![
                    (String::from("inspector"), Value::Bytes(inspector.to_vec())),
                    (String::from("result"), Value::Str(result.clone())),
                ],
            );
            update(&id, p, None, e);
            sdk::emit(
                "inspection",
                &[("id", id), ("inspector", sdk::hex(&inspector)), ("result", result)],
            );
        }
        // history(id)
        "history" => sdk::ret(&load(&sdk::arg_str(&input, 0))),
        _ => sdk::revert("unknown method"),
    }
}
