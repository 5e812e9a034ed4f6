/* Hamroh console: live updates, urgent alerts and ready replies. No build step: it runs after the vendored
   htmx and its SSE extension. Her words never pass through here: feed events only name a case, and the
   fragments the page asks for come from the server already escaped. */
(function () {
  "use strict";

  var root = document.querySelector("[data-console]");
  if (!root) {
    return;
  }
  var ALERT_KINDS = ["case_opened", "case_raised", "case_alert"];
  var REALERT_MS = 30000;
  var caseId = root.getAttribute("data-case-id");
  var liveState = document.getElementById("live-state");
  var banner = document.getElementById("urgent-banner");
  var sound = document.getElementById("urgent-sound");
  var alertsOn = document.getElementById("alerts-on");
  var title = document.title;
  var alerted = new Map(); // case id -> when the page last alerted about it
  var opens = 0;
  var closedTimes = 0;
  var transcriptAtBottom = true;
  var hersBefore = 0;
  var announce = document.getElementById("announce");

  function say(state, text) {
    liveState.setAttribute("data-state", state);
    liveState.textContent = text;
  }

  function refresh() {
    document.querySelectorAll("[data-live]").forEach(function (region) {
      htmx.trigger(region, "refresh");
    });
  }

  function canNotify() {
    return "Notification" in window && Notification.permission === "granted";
  }

  function offerSwitch(soundBlocked) {
    var ask = "Notification" in window && Notification.permission === "default";
    alertsOn.hidden = !(ask || soundBlocked);
  }

  function urgent(id) {
    banner.hidden = false;
    document.title = "(!) " + title;
    try {
      sound.currentTime = 0;
      var playing = sound.play();
      if (playing && typeof playing.catch === "function") {
        playing.catch(function () {
          offerSwitch(true); // the browser wants a click on the page before it plays sound
        });
      }
    } catch (error) {
      offerSwitch(true);
    }
    if (canNotify()) {
      try {
        var note = new Notification("Hamroh: an urgent case", {
          body: "Case " + id + " needs a counsellor now.",
          tag: "hamroh-case-" + id,
          requireInteraction: true
        });
        note.onclick = function () {
          window.focus();
          window.location.href = "/console/cases/" + encodeURIComponent(id);
        };
      } catch (error) {
        /* some browsers allow notifications only from a service worker: the banner and sound remain */
      }
    }
  }

  function calm() {
    banner.hidden = true;
    document.title = title;
  }

  // A feed event: the page asks again for what it shows; nothing from the event is put in the page.
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    event.preventDefault();
    var message = event.detail;
    if (message.type === "reload") {
      refresh();
      return;
    }
    var data;
    try {
      data = JSON.parse(message.data);
    } catch (error) {
      return;
    }
    if (caseId === null || String(data["case"]) === caseId) {
      refresh();
    }
    if (data.priority === "urgent" && ALERT_KINDS.indexOf(data.kind) >= 0) {
      // A new urgent case comes with an opening and an alert: one chime for both, again only later.
      var id = String(data["case"]);
      var now = Date.now();
      if (!alerted.has(id) || now - alerted.get(id) > REALERT_MS) {
        alerted.set(id, now);
        urgent(id);
      }
    }
  });

  document.addEventListener("htmx:sseOpen", function () {
    opens += 1;
    closedTimes = 0;
    say("live", "Live");
    if (opens > 1) {
      refresh(); // back after a break: show what is true now
    }
  });

  document.addEventListener("htmx:sseError", function (event) {
    var source = event.detail && event.detail.source;
    if (source && source.readyState === 2) {
      closedTimes += 1;
    }
    if (closedTimes > 2) {
      say("down", "Not live: reload the page, or log in again");
    } else {
      say("connecting", "Reconnecting…");
    }
  });

  function herLines() {
    return document.querySelectorAll("#transcript .line.her").length;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var transcript = document.getElementById("transcript");
    if (transcript && event.detail.target.id === "live") {
      transcriptAtBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
      hersBefore = herLines();
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target.id === "live") {
      if (transcriptAtBottom) {
        toBottom();
      }
      if (herLines() > hersBefore) {
        // The conversation is swapped whole: say only what is new, not the whole transcript again.
        announce.textContent = "";
        window.setTimeout(function () {
          announce.textContent = "She wrote a new message.";
        }, 50);
      }
    }
    if (target.id === "queue") {
      var body = target.querySelector("[data-urgent-waiting]");
      if (body && body.getAttribute("data-urgent-waiting") === "0") {
        calm();
      }
    }
  });

  function toBottom() {
    var transcript = document.getElementById("transcript");
    if (transcript) {
      transcript.scrollTop = transcript.scrollHeight;
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) {
      return;
    }
    if (target.closest("#alerts-on")) {
      // This click is what lets the page play the chime; notifications need their own yes.
      if ("Notification" in window && Notification.permission === "default") {
        Notification.requestPermission().then(
          function () { offerSwitch(false); },
          function () { offerSwitch(false); }
        );
      }
      alertsOn.hidden = true;
      return;
    }
    if (target.closest("#urgent-dismiss")) {
      calm();
      return;
    }
    var canned = target.closest("[data-canned]");
    var box = document.getElementById("reply-text");
    if (canned && box) {
      var text = canned.getAttribute("data-canned") || "";
      box.value = box.value.trim() ? box.value.replace(/\s+$/, "") + " " + text : text;
      box.dispatchEvent(new Event("input", { bubbles: true }));
      box.focus();
    }
  });

  offerSwitch(false);
  toBottom();
})();
