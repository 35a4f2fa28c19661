// fluxabee dashboard: confirmations, actions, live refresh. Hand-written, no dependency.
"use strict";

function flash(text, ok) {
  const box = document.getElementById("flash");
  box.textContent = text;
  box.className = ok ? "ok" : "error";
}

function selected(form) {
  // The rows' boxes belong to the page's selection form (form="..."), whichever action runs.
  const holder = form.closest("[data-selection]");
  const owner = holder ? holder.dataset.selection : form.id;
  return Array.from(document.querySelectorAll(`input[name=ids][form="${owner}"]:checked`))
    .map((box) => box.value);
}

function ask(question) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = question;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

async function send(form) {
  const body = new URLSearchParams(new FormData(form));
  body.delete("ids");
  const ids = form.dataset.confirm.includes("{n}") ? selected(form) : [];
  if (form.dataset.confirm.includes("{n}") && ids.length === 0) {
    flash("Select at least one row first.", false);
    return;
  }
  ids.forEach((id) => body.append("ids", id));
  if (!(await ask(form.dataset.confirm.replace("{n}", String(ids.length))))) return;
  const reply = await fetch(form.dataset.action, {
    method: "POST",
    body,
    headers: { "x-fluxabee-action": "1" },
    credentials: "same-origin",
  });
  let answer;
  try {
    answer = await reply.json();
  } catch (e) {
    answer = { ok: false, message: `HTTP ${reply.status}` };
  }
  sessionStorage.setItem("fluxabee-flash", JSON.stringify(answer));
  if (answer.ok) location.reload();
  else flash(answer.message, false);
}

async function refresh(element) {
  try {
    const reply = await fetch(element.dataset.refresh, { credentials: "same-origin" });
    if (reply.ok) element.querySelector("tbody").innerHTML = await reply.text();
  } catch (e) {
    /* the next round tries again */
  }
}

async function tail(element) {
  const url = `${element.dataset.tail}&after=${encodeURIComponent(element.dataset.after)}`;
  try {
    const reply = await fetch(url, { credentials: "same-origin" });
    if (!reply.ok) return;
    const rows = await reply.text();
    if (rows) {
      const none = element.querySelector("td.none");
      if (none) none.parentElement.remove();
      element.querySelector("tbody").insertAdjacentHTML("afterbegin", rows);
    }
    element.dataset.after = reply.headers.get("x-last-id") || element.dataset.after;
  } catch (e) {
    /* the next round tries again */
  }
}

async function preview(button) {
  const form = button.closest("form");
  const query = new URLSearchParams(new FormData(form));
  const out = form.querySelector("output");
  const reply = await fetch(`${button.dataset.preview}?${query}`, { credentials: "same-origin" });
  const answer = await reply.json();
  out.textContent = answer.message;
  out.className = answer.ok && !answer.refused ? "ok" : "error";
}

document.addEventListener("DOMContentLoaded", () => {
  const last = sessionStorage.getItem("fluxabee-flash");
  if (last) {
    sessionStorage.removeItem("fluxabee-flash");
    const answer = JSON.parse(last);
    flash(answer.message, answer.ok);
  }
  document.querySelectorAll("form.action").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(form);
    });
  });
  document.querySelectorAll("button.preview").forEach((button) => {
    button.addEventListener("click", () => preview(button));
  });
  document.querySelectorAll("[data-refresh]").forEach((element) => {
    setInterval(() => refresh(element), Number(element.dataset.every) || 5000);
  });
  document.querySelectorAll("[data-tail]").forEach((element) => {
    setInterval(() => tail(element), 2000);
  });
});
