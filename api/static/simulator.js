// Hamroh simulator: sends what she types (or the button she taps) and shows the replies as the channel would.
// Everything she or the bot writes is inserted with textContent, never as HTML.
// On Telegram her messages and the bot's carry message ids, as in a real chat: a "clear_chat" command names
// the ids to delete, and they go from the page as they would go from her phone.
(() => {
  "use strict";

  const root = document.getElementById("simulator");
  const endpoint = root.dataset.endpoint;
  const phone = root.querySelector(".phone");
  const log = document.getElementById("log");
  const emptyNote = log.querySelector(".empty");
  const composer = document.getElementById("composer");
  const message = document.getElementById("message");
  const address = document.getElementById("address");
  const addressLabel = document.getElementById("address-label");
  const phoneChannel = document.getElementById("phone-channel");
  const phoneAddress = document.getElementById("phone-address");
  const channelInputs = root.querySelectorAll('input[name="channel"]');
  const channelNames = { sms: "SMS", telegram: "Telegram" };

  // One transcript per woman (channel and address), so switching back shows her conversation again.
  const transcripts = new Map();
  const nodes = new WeakMap(); // each shown entry's element, so a cleared one can be taken away
  const lastAddress = { sms: address.dataset.sms, telegram: address.dataset.telegram };
  let channel = "sms";
  let pending = Promise.resolve(); // messages leave one after another, in the order she sent them
  let inFlight = 0;

  const keyOf = (chan, addr) => `${chan} ${addr.trim()}`;
  const currentKey = () => keyOf(channel, address.value);

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function plural(count, one, many) {
    return `${count} ${count === 1 ? one : many}`;
  }

  function smsNote(sms) {
    return [plural(sms.segments, "SMS", "SMS"), sms.encoding, plural(sms.chars, "character", "characters")].join(" · ");
  }

  function renderEntry(entry) {
    switch (entry.kind) {
      case "her": {
        const item = element("div", "message her");
        item.append(element("p", "bubble", entry.text));
        return item;
      }
      case "press":
        return element("p", "press", `▸ ${entry.label}`);
      case "error":
        return element("p", "error", entry.text);
      case "reply":
        return renderReply(entry.channel, entry.reply);
      default:
        return element("p", "error", "?");
    }
  }

  function renderReply(chan, reply) {
    const item = element("div", "message bot");
    if (reply.message_id !== undefined) item.dataset.messageId = String(reply.message_id);
    item.append(element("p", "bubble", String(reply.text ?? "")));
    if (chan === "sms" && reply.sms) {
      item.append(element("p", "note", smsNote(reply.sms)));
    }
    const rows = reply.reply_markup?.inline_keyboard ?? [];
    if (chan === "telegram" && rows.length > 0) {
      const keyboard = element("div", "keyboard");
      keyboard.setAttribute("role", "group");
      keyboard.setAttribute("aria-label", "Buttons");
      for (const row of rows) {
        for (const button of row) {
          const tap = element("button", "", String(button.text ?? ""));
          tap.type = "button";
          tap.dataset.callback = String(button.callback_data ?? "");
          keyboard.append(tap);
        }
      }
      item.append(keyboard);
    }
    return item;
  }

  function show(entry) {
    const node = renderEntry(entry);
    nodes.set(entry, node);
    log.append(node);
  }

  function record(key, entry) {
    if (!transcripts.has(key)) transcripts.set(key, []);
    transcripts.get(key).push(entry);
    if (key === currentKey()) {
      emptyNote.hidden = true;
      show(entry);
      log.scrollTop = log.scrollHeight;
    }
  }

  // Her chat loses what the command names: her messages, the bot's, and the taps on buttons of those.
  function clearChat(key, messageIds) {
    const gone = new Set(messageIds);
    const entries = transcripts.get(key) ?? [];
    const kept = entries.filter((entry) => {
      switch (entry.kind) {
        case "her":
          return !gone.has(entry.messageId);
        case "press":
          return !gone.has(entry.on);
        case "reply":
          return !gone.has(entry.reply.message_id);
        default:
          return true;
      }
    });
    if (kept.length === entries.length) return;
    transcripts.set(key, kept);
    if (key !== currentKey()) return;
    const hadFocus = log.contains(document.activeElement);
    for (const entry of entries) {
      if (!kept.includes(entry)) nodes.get(entry)?.remove();
    }
    emptyNote.hidden = kept.length > 0;
    if (hadFocus && !log.contains(document.activeElement)) log.focus({ preventScroll: true });
  }

  function showConversation() {
    const addr = address.value.trim();
    phone.dataset.channel = channel;
    phoneChannel.textContent = channelNames[channel];
    phoneAddress.textContent = addr;
    log.replaceChildren(emptyNote);
    const entries = transcripts.get(currentKey()) ?? [];
    emptyNote.hidden = entries.length > 0;
    for (const entry of entries) show(entry);
    log.scrollTop = log.scrollHeight;
  }

  function reasonOf(status, body) {
    const detail = body && body.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => d.msg ?? String(d)).join("; ");
    return `the server answered ${status}`;
  }

  async function post(payload) {
    let response;
    try {
      response = await fetch(endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(payload),
      });
    } catch {
      return { error: "Could not reach the server. Is it running?" };
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) return { error: `Not sent: ${reasonOf(response.status, body)}` };
    return {
      messageId: body?.message_id ?? undefined,
      replies: Array.isArray(body?.replies) ? body.replies : [],
      commands: Array.isArray(body?.commands) ? body.commands : [],
    };
  }

  function send(payload, shown) {
    const key = keyOf(payload.channel, payload.address);
    record(key, shown);
    inFlight += 1;
    log.setAttribute("aria-busy", "true");
    pending = pending
      .then(() => post(payload))
      .then((result) => {
        if (result.error) {
          record(key, { kind: "error", text: result.error });
          return;
        }
        if (result.messageId !== undefined) shown.messageId = result.messageId;
        // A turn's commands were written before its replies: the chat is cleared, then the bot answers.
        for (const command of result.commands) {
          if (command.op === "clear_chat" && Array.isArray(command.message_ids)) clearChat(key, command.message_ids);
        }
        for (const reply of result.replies) record(key, { kind: "reply", channel: payload.channel, reply });
      })
      .finally(() => {
        inFlight -= 1;
        if (inFlight === 0) log.removeAttribute("aria-busy");
      });
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = message.value;
    if (text.trim() === "") {
      message.focus();
      return;
    }
    send({ channel, address: address.value.trim(), text }, { kind: "her", text });
    message.value = "";
    message.focus();
  });

  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  log.addEventListener("click", (event) => {
    const tap = event.target.closest(".keyboard button");
    if (!tap) return;
    const on = tap.closest(".message")?.dataset.messageId;
    send(
      { channel, address: address.value.trim(), text: "", button: tap.dataset.callback },
      { kind: "press", label: tap.textContent, on: on === undefined ? undefined : Number(on) },
    );
  });

  for (const input of channelInputs) {
    input.addEventListener("change", () => {
      if (!input.checked) return;
      lastAddress[channel] = address.value.trim();
      channel = input.value;
      address.value = lastAddress[channel];
      addressLabel.textContent = addressLabel.dataset[channel];
      address.inputMode = channel === "sms" ? "tel" : "text";
      showConversation();
    });
  }

  address.addEventListener("input", showConversation);

  address.inputMode = "tel";
  showConversation();
})();
