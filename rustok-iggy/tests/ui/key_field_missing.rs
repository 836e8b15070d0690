use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant)]
struct OrderPlaced {
    tenant_id: String,
    total_cents: u64,
}

fn main() {}
