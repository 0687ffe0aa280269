// Server-Sent Events read with fetch(), because EventSource cannot send an
// Authorization header and the key must not travel in the URL (logs, history).
// The stream is parsed as the SSE format says (event/data/id fields, blank line ends
// a message, ":" lines are comments such as the server's keep-alive pings).

import { authHeaders } from "./api.js";

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 15000;

/** Parse SSE text incrementally; call `onMessage({event, data, id})` per message. */
export class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.event = "";
    this.data = [];
    this.id = null;
  }

  push(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop(); // an unfinished line waits for the next chunk
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      if (this.data.length) {
        this.onMessage({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id") this.id = value;
  }
}

/**
 * Follow the event stream at `path`. Reconnects after a drop (1 s, doubling to 15 s),
 * unless `until(event)` said the stream is complete or `close()` was called.
 * `onStatus("live" | "connecting" | "closed", detail)` reports the connection state.
 * Events: `onEvent({event, data: parsed JSON, id})`. A 401 stops (the key is bad).
 */
export function follow(path, { onEvent, onStatus = () => {}, until = () => false, onOpen }) {
  const controller = new AbortController();
  let done = false;
  let backoff = MIN_BACKOFF_MS;

  async function once() {
    onStatus("connecting");
    const response = await fetch(path, {
      headers: { Accept: "text/event-stream", ...authHeaders() },
      signal: controller.signal,
      cache: "no-store",
    });
    if (response.status === 401 || response.status === 403 || response.status === 404) {
      done = true;
      onStatus("closed", `HTTP ${response.status}`);
      return;
    }
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    backoff = MIN_BACKOFF_MS;
    onStatus("live");
    if (onOpen) onOpen();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser((message) => {
      let data = message.data;
      try {
        data = JSON.parse(message.data);
      } catch {
        // keep the text
      }
      const event = { event: message.event, data, id: message.id };
      onEvent(event);
      if (until(event)) done = true;
    });
    for (;;) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      parser.push(value);
    }
  }

  (async () => {
    while (!done && !controller.signal.aborted) {
      try {
        await once();
      } catch (error) {
        if (controller.signal.aborted) break;
      }
      if (done || controller.signal.aborted) break;
      onStatus("connecting", `reconnecting in ${Math.round(backoff / 1000)} s`);
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
    onStatus("closed");
  })();

  return {
    close() {
      done = true;
      controller.abort();
    },
  };
}
