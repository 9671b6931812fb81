//! Supply-chain finance receivables.
//!
//! A core enterprise `issue`s a receivable (an amount due at maturity) to a
//! supplier. The holder may `transfer` it whole or `split` part of it to a
//! sub-supplier, or sell it to a bank at a discount: the holder
//! `offer_finance`s it to a bank, and the bank's `accept_finance` pays the
//! discounted price (native tokens sent with the call, forwarded to the
//! holder) and becomes the holder. At maturity the issuer `settle`s,
//! paying the full amount to whoever holds it. Only the holder can move a
//! receivable, a split can never exceed what is left, and a settled one is
//! dead: no double spending.
#![no_std]

use tongtian_contract_sdk::{self as sdk, String, Value};

fn key(id: u128) -> [u8; 17] {
    let mut k = [b'r'; 17];
    k[1..].copy_from_slice(&id.to_le_bytes());
    k
}

struct Receivable {
    id: u128,
    issuer: sdk::Address,
    holder: sdk::Address,
    amount: u128,
    maturity_ms: u128,
    status: String,
    parent: u128,
    offer: Option<(sdk::Address, u128)>,
}

impl Receivable {
    fn load(id: u128) -> Receivable {
        let v = sdk::get_value(&key(id)).unwrap_or_else(|| sdk::revert("unknown receivable"));
        let addr = |k: &str| v.get(k).and_then(Value::as_address).unwrap_or_else(|| sdk::revert("corrupt"));
        let int = |k: &str| v.get(k).and_then(Value::as_u128).unwrap_or_else(|| sdk::revert("corrupt"));
        let offer = match (v.get("offer_bank").and_then(Value::as_address), v.get("offer_price")) {
            (Some(b), Some(p)) => p.as_u128().map(|p| (b, p)),
            _ => None,
        };
        Receivable {
            id,
            issuer: addr("issuer"),
            holder: addr("holder"),
            amount: int("amount"),
            maturity_ms: int("maturity_ms"),
            status: String::from(v.get("status").and_then(Value::as_str).unwrap_or("")),
            parent: int("parent"),
            offer,
        }
    }

    fn value(&self) -> Value {
        let mut kvs = sdk::vec![
            (String::from("id"), Value::Int(self.id)),
            (String::from("issuer"), Value::Bytes(self.issuer.to_vec())),
            (String::from("holder"), Value::Bytes(self.holder.to_vec())),
            (String::from("amount"), Value::Int(self.amount)),
            (String::from("maturity_ms"), Value::Int(self.maturity_ms)),
            (String::from("status"), Value::Str(self.status.clone())),
            (String::from("parent"), Value::Int(self.parent)),
        ];
        if let Some((bank, price)) = self.offer {
            kvs.push((String::from("offer_bank"), Value::Bytes(bank.to_vec())));
            kvs.push((String::from("offer_price"), Value::Int(price)));
        }
        Value::Map(kvs)
    }

    fn save(&self) {
        sdk::set_value(&key(self.id), &self.value());
    }

    /// Revert unless the caller holds this live receivable.
    fn held_by_caller(&self) {
        if self.status != "active" {
            sdk::revert("receivable is not active");
        }
        if sdk::caller() != self.holder {
            sdk::revert("only the holder can do this");
        }
    }
}

fn next_id() -> u128 {
    let id = sdk::get_value(b"next").and_then(|v| v.as_u128()).unwrap_or(1);
    sdk::set_value(b"next", &Value::Int(id + 1));
    id
}

fn no_value() {
    if sdk::value() != 0 {
        sdk::revert("this method takes no payment");
    }
}

#[no_mangle]
pub extern "C" fn call() {
    let input = sdk::input();
    match input.method.as_str() {
        // issue(supplier, amount, maturity_ms) -> id
        "issue" => {
            no_value();
            let supplier = sdk::arg_address(&input, 0);
            let amount = sdk::arg_u128(&input, 1);
            let maturity_ms = sdk::arg_u128(&input, 2);
            if amount == 0 {
                sdk::revert("amount must be positive");
            }
            let r = Receivable {
                id: next_id(),
                issuer: sdk::caller(),
                holder: supplier,
                amount,
                maturity_ms,
                status: String::from("active"),
                parent: 0,
                offer: None,
            };
            r.save();
            sdk::emit(
                "issued",
                &[("id", sdk::dec(r.id)), ("holder", sdk::hex(&supplier)), ("amount", sdk::dec(amount))],
            );
            sdk::ret(&Value::Int(r.id));
        }
        // transfer(id, to)
        "transfer" => {
            no_value();
            let mut r = Receivable::load(sdk::arg_u128(&input, 0));
            let to = sdk::arg_address(&input, 1);
            r.held_by_caller();
            r.holder = to;
            r.offer = None;
            r.save();
            sdk::emit("transferred", &[("id", sdk::dec(r.id)), ("to", sdk::hex(&to))]);
        }
        // split(id, to, amount) -> new id
        "split" => {
            no_value();
            let mut r = Receivable::load(sdk::arg_u128(&input, 0));
            let to = sdk::arg_address(&input, 1);
            let amount = sdk::arg_u128(&input, 2);
            r.held_by_caller();
            if amount == 0 || amount >= r.amount {
                sdk::revert("split amount must be positive and less than the receivable");
            }
            r.amount -= amount;
            r.offer = None;
            r.save();
            let child = Receivable {
                id: next_id(),
                issuer: r.issuer,
                holder: to,
                amount,
                maturity_ms: r.maturity_ms,
                status: String::from("active"),
                parent: r.id,
                offer: None,
            };
            child.save();
            sdk::emit(
                "split",
                &[("id", sdk::dec(r.id)), ("child", sdk::dec(child.id)), ("amount", sdk::dec(amount))],
            );
            sdk::ret(&Value::Int(child.id));
        }
        // offer_finance(id, bank, price): the holder offers it for `price`.
        "offer_finance" => {
            no_value();
            let mut r = Receivable::load(sdk::arg_u128(&input, 0));
            let bank = sdk::arg_address(&input, 1);
            let price = sdk::arg_u128(&input, 2);
            r.held_by_caller();
            if price == 0 || price > r.amount {
                sdk::revert("price must be positive and at most the face amount");
            }
            r.offer = Some((bank, price));
            r.save();
        }
        // accept_finance(id), paying the offered price.
        "accept_finance" => {
            let mut r = Receivable::load(sdk::arg_u128(&input, 0));
            let Some((bank, price)) = r.offer else {
                sdk::revert("no finance offer")
            };
            if r.status != "active" {
                sdk::revert("receivable is not active");
            }
            if sdk::caller() != bank {
                sdk::revert("the offer is for another bank");
            }
            if sdk::value() != price {
                sdk::revert("payment must equal the offered price");
            }
            if !sdk::transfer(&r.holder, price) {
                sdk::revert("payment failed");
            }
            let seller = r.holder;
            r.holder = bank;
            r.offer = None;
            r.save();
            sdk::emit(
                "financed",
                &[("id", sdk::dec(r.id)), ("seller", sdk::hex(&seller)), ("bank", sdk::hex(&bank)), ("price", sdk::dec(price))],
            );
        }
        // settle(id), by the issuer at maturity, paying the face amount.
        "settle" => {
            let mut r = Receivable::load(sdk::arg_u128(&input, 0));
            if r.status != "active" {
                sdk::revert("receivable is not active");
            }
            if sdk::caller() != r.issuer {
                sdk::revert("only the issuer settles");
            }
            if (sdk::timestamp_ms() as u128) < r.maturity_ms {
                sdk::revert("not yet mature");
            }
            if sdk::value() != r.amount {
                sdk::revert("payment must equal the face amount");
            }
            if !sdk::transfer(&r.holder, r.amount) {
                sdk::revert("payment failed");
            }
            r.status = String::from("settled");
            r.offer = None;
            r.save();
            sdk::emit(
                "settled",
                &[("id", sdk::dec(r.id)), ("holder", sdk::hex(&r.holder)), ("amount", sdk::dec(r.amount))],
            );
        }
        "get" => sdk::ret(&Receivable::load(sdk::arg_u128(&input, 0)).value()),
        _ => sdk::revert("unknown method"),
    }
}
