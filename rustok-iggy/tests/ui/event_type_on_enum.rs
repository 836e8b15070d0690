use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", event_type = "order")]
enum OrderEvent {
    Placed { order_id: u64 },
}

fn main() {}
