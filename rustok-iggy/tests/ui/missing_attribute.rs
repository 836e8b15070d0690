use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
struct OrderPlaced {
    tenant_id: String,
}

// The stub impl keeps this from adding errors of its own.
const _: &str = <OrderPlaced as IggyEvent>::TOPIC;

fn main() {}
