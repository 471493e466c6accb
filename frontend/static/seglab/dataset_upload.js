// Upload page: sends the form with XMLHttpRequest so the page can show the bytes sent
// (upload.onprogress), then a "validating" state while the server checks every file,
// then either goes to the new dataset's page or shows the server's messages next to
// their fields. Without this script the form posts as a plain HTML form.

import { el } from "./dom.js";

const form = document.getElementById("upload-form");
const status = document.getElementById("upload-status");
const progress = document.getElementById("upload-progress");
const state = document.getElementById("upload-state");
const button = document.getElementById("upload-button");
const maxBytes = Number(form.dataset.maxBytes);

function size(bytes) {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

function fieldBox(name) {
  const input = form.elements.namedItem(name);
  return input ? input.closest(".field") : null;
}

function clearErrors() {
  for (const node of form.querySelectorAll(".error, #upload-errors")) node.remove();
  for (const box of form.querySelectorAll(".has-error")) box.classList.remove("has-error");
}

function showFieldError(name, message) {
  const box = fieldBox(name) || form.querySelector(".form-errors");
  box.classList.add("has-error");
  box.append(el("p", { class: "error" }, message));
}

function showProblems(problems) {
  const box = fieldBox("archive");
  box.classList.add("has-error");
  box.append(el("div", { class: "error-box", id: "upload-errors" },
    el("p", {}, el("strong", {}, "The dataset was refused; nothing was stored."), " Fix these and upload again:"),
    el("ul", {}, problems.map((p) => el("li", {}, p.file ? [el("code", {}, p.file), ": "] : null, p.message)))));
}

function finish(message) {
  button.disabled = false;
  status.dataset.state = "answered";
  state.textContent = message;
}

function answered(xhr) {
  let body = null;
  try { body = JSON.parse(xhr.responseText); } catch { body = null; }
  if (xhr.status === 201 && body && body.redirect) {
    status.dataset.state = "accepted";
    state.textContent = "Valid: opening the dataset…";
    window.location.assign(body.redirect);
    return;
  }
  if (!body || !body.fields) {
    finish(`The server answered ${xhr.status} ${xhr.statusText}; nothing was stored. Try again.`);
    return;
  }
  for (const [name, messages] of Object.entries(body.fields)) {
    for (const message of messages) showFieldError(name === "__all__" ? "" : name, message);
  }
  if (body.problems.length) showProblems(body.problems);
  finish("Refused: see the messages above.");
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearErrors();
  const file = form.elements.namedItem("archive").files[0];
  if (file && file.size > maxBytes) {
    showFieldError("archive", `The file is ${size(file.size)}; the limit is ${size(maxBytes)}.`);
    return;
  }
  const xhr = new XMLHttpRequest();
  xhr.open("POST", form.action || window.location.href);
  xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
  xhr.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    progress.max = e.total;
    progress.value = e.loaded;
    state.textContent = `${size(e.loaded)} of ${size(e.total)} sent`;
  });
  xhr.upload.addEventListener("load", () => {
    progress.value = progress.max;
    status.dataset.state = "validating";
    state.textContent = "Sent; validating every image and mask…";
  });
  xhr.addEventListener("load", () => answered(xhr));
  xhr.addEventListener("error", () => finish("The upload failed (the connection broke); nothing was stored. Try again."));
  status.hidden = false;
  status.dataset.state = "sending";
  progress.removeAttribute("value");
  button.disabled = true;
  state.textContent = "Starting the upload…";
  xhr.send(new FormData(form));
});
