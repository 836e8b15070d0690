use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Region {
    name: String,
}

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = region)]
struct OrderPlaced {
    region: Region,
    total_cents: u64,
}

fn main() {}
