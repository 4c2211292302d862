//! What every reader of a stream's message looks at: its subject, its
//! headers, its payload — the same whether a consumer delivered it or it
//! was fetched by sequence.

use async_nats::jetstream::message::StreamMessage;
use async_nats::HeaderMap;

use crate::headers;
use crate::names::origin_of;

pub trait Envelope {
    fn subject(&self) -> &str;
    fn headers(&self) -> Option<&HeaderMap>;
    fn payload(&self) -> &[u8];

    /// A header's value (empty counts as none).
    fn header(&self, name: &str) -> Option<&str> {
        headers::get(self.headers(), name)
    }

    /// Protocol and device: the headers, else the subject.
    fn origin(&self) -> (String, String) {
        origin_of(
            self.subject(),
            self.header(headers::PROTOCOL),
            self.header(headers::DEVICE),
        )
    }
}

impl Envelope for async_nats::Message {
    fn subject(&self) -> &str {
        self.subject.as_str()
    }
    fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_ref()
    }
    fn payload(&self) -> &[u8] {
        &self.payload
    }
}

impl Envelope for async_nats::jetstream::Message {
    fn subject(&self) -> &str {
        self.message.subject.as_str()
    }
    fn headers(&self) -> Option<&HeaderMap> {
        self.message.headers.as_ref()
    }
    fn payload(&self) -> &[u8] {
        &self.message.payload
    }
}

impl Envelope for StreamMessage {
    fn subject(&self) -> &str {
        self.subject.as_str()
    }
    fn headers(&self) -> Option<&HeaderMap> {
        Some(&self.headers)
    }
    fn payload(&self) -> &[u8] {
        &self.payload
    }
}
