use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders")]
#[iggy(key = tenant_id, topic = "payments")]
struct OrderPlaced {
    tenant_id: String,
}

fn main() {}
