// PixyProxy gallery: plain JavaScript against the service's own HTTP API, no framework, no build step.
"use strict";

(() => {
  const PAGE_SIZE = 40;
  const THUMB_WIDTH = 256;
  const CHILD_SCAN = 100; // how many newer images the image page looks through for edits made from it
  const KEY_STORAGE = "pixyproxy.apiKey";
  const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
  const STATUS_WORDS = {
    queued: "Waiting for its turn…",
    running: "Generating…",
    succeeded: "Done.",
    failed: "The generation failed.",
    canceled: "The generation was canceled.",
  };
  const $ = (id) => document.getElementById(id);

  const state = {
    key: sessionStorage.getItem(KEY_STORAGE) || null,
    // What the service offers (readOffer); optimistic where the page does not say.
    can: { keys: false, jobs: true, events: true, variants: true, remove: true, search: true, model: true,
      createdAfter: true, parentFilter: null, edits: true },
    next: undefined, // undefined: first page not asked yet; null: no more; else the next page's path
    loading: false,
    epoch: 0, // bumped by every new search: answers to an older one are dropped
    images: new Map(), // guid -> detail, for everything the page has seen
    order: [], // guids in grid order
    models: new Set(),
    current: null, // the guid on the image page
    gridScroll: 0,
  };

  // ---- talking to the service -------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, detail, requestId) {
      super(detail);
      this.status = status;
      this.code = code;
      this.requestId = requestId;
    }
  }

  const PLAIN_STATUS = {
    400: "The request was not understood.",
    404: "It is not there (it may have been deleted).",
    405: "This service does not offer that yet.",
    413: "The request is too large.",
    422: "The request was refused as not valid.",
    429: "Too many requests just now; wait a moment and try again.",
    500: "The service hit an unexpected error.",
    502: "The image generator failed.",
    503: "The service is busy or a part of it is down; try again shortly.",
    504: "The image generator took too long.",
  };

  async function errorFrom(response) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    const detail = body && typeof body.detail === "string" && body.detail
      ? body.detail
      : PLAIN_STATUS[response.status] || `The service answered ${response.status}.`;
    const requestId = (body && body.request_id) || response.headers.get("X-Request-ID");
    return new ApiError(response.status, (body && body.code) || `http_${response.status}`, detail, requestId);
  }

  function headersFor(init) {
    const headers = new Headers(init.headers || {});
    if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
    return headers;
  }

  // fetch() with the key, errors turned into ApiError; a 401 asks for a key and tries again with it.
  async function api(path, init = {}) {
    for (;;) {
      let response;
      try {
        response = await fetch(path, { ...init, headers: headersFor(init) });
      } catch (err) {
        if (err.name === "AbortError") throw err;
        throw new ApiError(0, "unreachable", "The service could not be reached; check that it is running.", null);
      }
      if (response.status === 401) {
        const hadKey = Boolean(state.key);
        forgetKey();
        await askForKey(hadKey ? "That API key was not accepted. Check it and try again." : "");
        continue;
      }
      if (!response.ok) throw await errorFrom(response);
      return response;
    }
  }

  const json = async (path, init) => (await api(path, init)).json();

  function randomKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs a secure context
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function postJson(path, body) {
    return api(path, {
      method: "POST",
      // One Idempotency-Key per submission: a retry (after a key prompt) never pays twice.
      headers: { "Content-Type": "application/json", "Idempotency-Key": randomKey() },
      body: JSON.stringify(body),
    });
  }

  // What the service offers (keys or not, which routes and filters), put in the page by the service from
  // its own OpenAPI document: the page asks for a key before its first call and leaves out what is absent.
  function readOffer() {
    try {
      Object.assign(state.can, JSON.parse($("api-offer").textContent));
    } catch {
      // no offer in the page: stay optimistic, and learn from the answers instead
    }
  }

  // ---- the key -------------------------------------------------------------------------------------

  let keyPrompt = null; // one dialog however many requests were refused at once

  function askForKey(message) {
    if (!keyPrompt) {
      keyPrompt = new Promise((resolve) => {
        const dialog = $("key-dialog");
        const form = $("key-form");
        $("key-message").textContent = message;
        $("key-input").value = "";
        const onSubmit = (event) => {
          event.preventDefault();
          const key = $("key-input").value.trim();
          if (!key) return;
          state.key = key;
          sessionStorage.setItem(KEY_STORAGE, key);
          $("forget-key").hidden = false;
          form.removeEventListener("submit", onSubmit);
          dialog.close();
          keyPrompt = null;
          resolve();
        };
        form.addEventListener("submit", onSubmit);
        dialog.showModal();
        $("key-input").focus();
      });
    }
    return keyPrompt;
  }

  function forgetKey() {
    state.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    $("forget-key").hidden = true;
  }

  // ---- messages ------------------------------------------------------------------------------------

  function showError(what, err) {
    const text = $("notice-text");
    text.textContent = "";
    text.append(`${what}: ${err.message || String(err)}`);
    if (err.requestId) {
      const code = document.createElement("code");
      code.textContent = err.requestId;
      text.append(" (request id ", code, ")");
    }
    $("notice").hidden = false;
  }

  function clearError() {
    $("notice").hidden = true;
  }

  // ---- images --------------------------------------------------------------------------------------

  const contentUrl = (guid) => `/image/${encodeURIComponent(guid)}/content`;
  const thumbUrl = (guid) => `${contentUrl(guid)}?width=${THUMB_WIDTH}&format=webp`;
  // A thumbnail falls back to the whole image when the variant is refused (422) or missing (404).
  const thumbCandidates = (guid) => (state.can.variants ? [thumbUrl(guid), contentUrl(guid)] : [contentUrl(guid)]);

  const objectUrls = new WeakMap(); // img -> blob URL it shows (keyed mode), revoked when replaced

  function forgetBlob(img) {
    const old = objectUrls.get(img);
    if (old) URL.revokeObjectURL(old);
    objectUrls.delete(img);
  }

  function setBlob(img, url) {
    forgetBlob(img);
    objectUrls.set(img, url);
    img.src = url;
  }

  async function fetchInto(img, candidates) {
    for (const url of candidates) {
      try {
        const blob = await (await api(url)).blob();
        setBlob(img, URL.createObjectURL(blob));
        return;
      } catch (err) {
        if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 422)) break;
      }
    }
    img.classList.add("broken");
  }

  // With keys on an <img> cannot send the key, so the bytes are fetched with it and shown as a blob;
  // those fetches wait until the image nears the viewport, as loading="lazy" does for plain ones.
  const nearView = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      nearView.unobserve(entry.target);
      fetchInto(entry.target, JSON.parse(entry.target.dataset.candidates));
    }
  }, { rootMargin: "400px" });

  function showImage(img, candidates, lazy) {
    if (state.key) {
      img.dataset.candidates = JSON.stringify(candidates);
      if (lazy) nearView.observe(img);
      else fetchInto(img, candidates);
      return;
    }
    let index = 0;
    img.onerror = () => {
      index += 1;
      if (index < candidates.length) img.src = candidates[index];
      else img.onerror = null;
    };
    img.loading = lazy ? "lazy" : "eager";
    img.src = candidates[0];
  }

  function remember(detail) {
    state.images.set(detail.guid, detail);
    addModelName(detail.model);
  }

  function addModelName(name) {
    if (!name || state.models.has(name)) return;
    state.models.add(name);
    const option = document.createElement("option");
    option.value = name;
    $("models").append(option);
  }

  // ---- the model catalogue (GET /models): the filter's names, and what the form offers per model --

  // Each option of the generate form by the name GET /models gives it.
  const OPTION_FIELDS = {
    size: "gen-size", quality: "gen-quality", background: "gen-background", output_format: "gen-format",
    output_compression: "gen-compression", moderation: "gen-moderation", complexity: "gen-complexity",
    frame_count: "gen-frames", frame_duration_ms: "gen-frame-ms", negative_prompt: "gen-negative",
  };
  const SIZES = ["auto", "256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "2048x2048", "3840x2160"];
  const catalogue = new Map(); // a model's name or alias -> what GET /models says of it

  async function readModels() {
    let listed;
    try {
      listed = await json("/models");
    } catch {
      return; // an older service: the form offers everything and the service refuses what it must
    }
    for (const model of listed) {
      catalogue.set(model.name, model);
      for (const alias of model.aliases || []) catalogue.set(alias, model);
      addModelName(model.name);
    }
    fitForm();
  }

  function chosenModel() {
    const name = $("gen-model").value.trim();
    if (name) return catalogue.get(name) || null;
    for (const model of catalogue.values()) if (model.default) return model;
    return null;
  }

  function offeredSizes(rule) {
    if (Array.isArray(rule.sizes) && rule.min_side === undefined) return rule.sizes;
    return SIZES.filter((size) => {
      if (size === "auto") return true;
      const [w, h] = size.split("x").map(Number);
      return Math.min(w, h) >= (rule.min_side || 1) && Math.max(w, h) <= (rule.max_side || Infinity);
    }).concat(rule.sizes || []).filter((size, i, all) => all.indexOf(size) === i);
  }

  function fillSelect(select, values) {
    const kept = select.value;
    const first = select.options[0]; // "default"
    select.replaceChildren(first);
    for (const value of values) {
      const option = document.createElement("option");
      option.textContent = String(value);
      select.append(option);
    }
    select.value = values.map(String).includes(kept) ? kept : "";
  }

  // Only what the chosen model takes is offered (an unknown model, or one without a table: everything).
  function fitForm() {
    const model = chosenModel();
    const checked = model && model.checked;
    const format = () => $("gen-format").value;
    for (const [name, id] of Object.entries(OPTION_FIELDS)) {
      const element = $(id);
      let takes = !checked || name in model.options;
      if (takes && checked && element.tagName === "SELECT") {
        const values = model.options[name];
        if (name === "size" && values) fillSelect(element, offeredSizes(values));
        else if (Array.isArray(values)) fillSelect(element, values);
      }
      if (name === "frame_count" || name === "frame_duration_ms") takes = takes && format() === "gif";
      if (name === "output_compression") takes = takes && ["webp", "jpeg"].includes(format());
      element.disabled = !takes;
      element.parentElement.hidden = !takes;
    }
    const previews = !(model && model.partial_images === false) && !["gif", "svg"].includes(format());
    $("gen-previews").disabled = !previews;
    $("gen-previews").parentElement.hidden = !previews;
  }

  function makeTile(detail) {
    const li = document.createElement("li");
    li.className = "tile";
    li.dataset.guid = detail.guid;
    const link = document.createElement("a");
    link.href = `#/image/${detail.guid}`;
    const img = document.createElement("img");
    img.alt = detail.prompt;
    img.decoding = "async";
    img.width = THUMB_WIDTH;
    img.height = Math.round((THUMB_WIDTH * detail.height) / Math.max(1, detail.width));
    const caption = document.createElement("span");
    caption.className = "caption";
    caption.setAttribute("aria-hidden", "true");
    caption.textContent = detail.prompt;
    link.append(img, caption);
    li.append(link);
    showImage(img, thumbCandidates(detail.guid), true);
    return li;
  }

  function addTiles(details, atTop) {
    const grid = $("grid");
    const fresh = details.filter((d) => d && d.guid && !grid.querySelector(`[data-guid="${d.guid}"]`));
    fresh.forEach(remember);
    const tiles = fresh.map(makeTile);
    if (atTop) {
      grid.prepend(...tiles);
      state.order.unshift(...fresh.map((d) => d.guid));
      tiles.forEach((t) => t.classList.add("new"));
    } else {
      grid.append(...tiles);
      state.order.push(...fresh.map((d) => d.guid));
    }
    updateGridStatus();
  }

  function removeTile(guid) {
    const tile = $("grid").querySelector(`[data-guid="${guid}"]`);
    if (tile) {
      tile.querySelectorAll("img").forEach(forgetBlob);
      tile.remove();
    }
    state.order = state.order.filter((g) => g !== guid);
    state.images.delete(guid);
    updateGridStatus();
  }

  // ---- the grid ------------------------------------------------------------------------------------

  function filters() {
    return { q: $("q").value.trim(), model: $("model").value.trim() };
  }

  function firstPage() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    const { q, model } = filters();
    if (q && state.can.search) query.set("q", q);
    if (model && state.can.model) query.set("model", model);
    return `/image/?${query}`;
  }

  // The Link header's next page, kept to its path and query: behind a proxy its host may not be ours.
  function nextFrom(link) {
    const match = link && link.match(/<([^>]+)>\s*;\s*rel="?next"?/);
    if (!match) return null;
    const url = new URL(match[1], location.href);
    return url.pathname + url.search;
  }

  function updateGridStatus() {
    const count = $("grid").children.length;
    const { q, model } = filters();
    const filtered = q || model;
    let text = "";
    if (state.loading && !count) text = "Loading images…";
    else if (!count && state.next === null) {
      text = filtered ? "No image matches this search." : "No images yet: generate the first one.";
    } else if (state.next === null && count) text = `${count} image${count === 1 ? "" : "s"}${filtered ? " match" : ""}.`;
    $("grid-status").textContent = text;
    $("more").hidden = !state.next || state.loading;
  }

  async function loadMore() {
    if (state.loading || state.next === null) return;
    state.loading = true;
    updateGridStatus();
    const epoch = state.epoch;
    try {
      const response = await api(state.next === undefined ? firstPage() : state.next);
      const items = await response.json();
      if (epoch !== state.epoch) return;
      state.next = nextFrom(response.headers.get("Link"));
      addTiles(items, false);
      clearError();
    } catch (err) {
      if (epoch === state.epoch) showError("Could not load the images", err);
      return;
    } finally {
      if (epoch === state.epoch) {
        state.loading = false;
        updateGridStatus();
      }
    }
    // A tall screen may still show the end of the grid: keep going until it does not.
    requestAnimationFrame(() => {
      if (state.next && !$("grid-view").hidden && sentinelNear()) loadMore();
    });
  }

  function sentinelNear() {
    return $("sentinel").getBoundingClientRect().top < window.innerHeight + 600;
  }

  function resetGrid() {
    state.epoch += 1;
    state.loading = false;
    state.next = undefined;
    state.order = [];
    for (const img of $("grid").querySelectorAll("img")) forgetBlob(img);
    $("grid").replaceChildren();
    loadMore();
  }

  // Arrow keys move between tiles (up and down by a row, measured from the layout).
  function onGridKey(event) {
    const links = Array.from($("grid").querySelectorAll(".tile a"));
    const at = links.indexOf(document.activeElement);
    if (at < 0) return;
    const top = links[0].getBoundingClientRect().top;
    const perRow = Math.max(1, links.filter((l) => l.getBoundingClientRect().top === top).length);
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: perRow, ArrowUp: -perRow };
    let target = null;
    if (event.key in moves) target = at + moves[event.key];
    else if (event.key === "Home") target = 0;
    else if (event.key === "End") target = links.length - 1;
    if (target === null) return;
    event.preventDefault();
    target = Math.min(links.length - 1, Math.max(0, target));
    links[target].focus();
    if (target >= links.length - perRow) loadMore();
  }

  // ---- the image page ------------------------------------------------------------------------------

  function formatTime(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  function formatUsage(usage) {
    if (!usage || typeof usage !== "object") return null;
    const parts = [];
    for (const [name, words] of [["input_tokens", "in"], ["output_tokens", "out"], ["total_tokens", "total"]]) {
      if (typeof usage[name] === "number") parts.push(`${usage[name].toLocaleString()} ${words}`);
    }
    return parts.length ? `${parts.join(", ")} tokens` : JSON.stringify(usage);
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
    return `${(n / 1024 / 1024).toFixed(2)} MB`;
  }

  function renderDetails(detail) {
    const rows = [
      ["Revised prompt", detail.revised_prompt],
      ["Model", detail.model],
      ["Size", `${detail.width} × ${detail.height}${detail.size && detail.size !== `${detail.width}x${detail.height}` ? ` (asked ${detail.size})` : ""}`],
      ["Format", `${detail.output_format || detail.content_type.replace("image/", "")}, ${formatBytes(detail.size_bytes)}`],
      ["Quality", detail.quality],
      ["Background", detail.background],
      ["Usage", formatUsage(detail.usage)],
      ["Created", detail.created_at],
      ["Guid", detail.guid],
    ];
    const list = $("image-details");
    list.replaceChildren();
    for (const [name, value] of rows) {
      if (value === null || value === undefined || value === "") continue;
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      if (name === "Created") {
        const time = document.createElement("time");
        time.dateTime = value;
        time.textContent = formatTime(value);
        dd.append(time);
      } else if (name === "Guid") {
        const code = document.createElement("code");
        code.textContent = value;
        dd.append(code);
      } else {
        dd.textContent = value;
      }
      list.append(dt, dd);
    }
  }

  function lineageLink(detail, label) {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = `#/image/${detail.guid}`;
    link.setAttribute("aria-label", `${label}: ${detail.prompt}`);
    const img = document.createElement("img");
    img.alt = "";
    img.width = 64;
    img.height = 64;
    showImage(img, thumbCandidates(detail.guid), false);
    const text = document.createElement("span");
    text.textContent = detail.prompt;
    link.append(img, text);
    li.append(link);
    return li;
  }

  function lineageGroup(title, items) {
    const box = document.createDocumentFragment();
    const heading = document.createElement("p");
    heading.className = "lineage-group";
    heading.textContent = title;
    const list = document.createElement("ul");
    list.className = "lineage";
    list.append(...items);
    box.append(heading, list);
    return box;
  }

  // Edits made from this image: by the list's parent filter where the service has one, else among the
  // images made after it (a bounded look, plus whatever the page has already seen).
  async function findChildren(detail) {
    const query = new URLSearchParams({ limit: String(CHILD_SCAN) });
    if (state.can.parentFilter) query.set(state.can.parentFilter, detail.guid);
    else if (state.can.createdAfter) query.set("created_after", detail.created_at);
    const found = new Map();
    for (const seen of state.images.values()) if (seen.parent_guid === detail.guid) found.set(seen.guid, seen);
    try {
      for (const item of await json(`/image/?${query}`)) {
        remember(item);
        if (item.parent_guid === detail.guid) found.set(item.guid, item);
      }
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 422) throw err;
    }
    return Array.from(found.values()).sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  }

  async function renderLineage(detail) {
    const box = $("lineage");
    box.replaceChildren();
    box.setAttribute("aria-busy", "true");
    const parts = [];
    if (detail.parent_guid) {
      try {
        const parent = state.images.get(detail.parent_guid) || (await json(`/image/${detail.parent_guid}`));
        remember(parent);
        parts.push(lineageGroup("Edited from", [lineageLink(parent, "Edited from")]));
      } catch (err) {
        const gone = document.createElement("p");
        gone.textContent = err.status === 404 ? "Edited from an image that has since been deleted." : `Edited from ${detail.parent_guid}.`;
        parts.push(gone);
      }
    }
    try {
      const children = await findChildren(detail);
      if (children.length) parts.push(lineageGroup("Edits of this image", children.map((c) => lineageLink(c, "Edit"))));
    } catch (err) {
      showError("Could not look for edits of this image", err);
    }
    if (state.current !== detail.guid) return;
    if (!parts.length) {
      const none = document.createElement("p");
      none.className = "status";
      none.textContent = "An original: not edited from another image, and no edits of it yet.";
      parts.push(none);
    }
    box.replaceChildren(...parts);
    box.removeAttribute("aria-busy");
  }

  async function openImage(guid) {
    state.current = guid;
    $("share-status").textContent = "";
    $("edit-status").textContent = "";
    $("delete").hidden = !state.can.remove;
    $("edit").hidden = !state.can.edits;
    let detail = state.images.get(guid);
    if (!detail) {
      try {
        detail = await json(`/image/${guid}`);
      } catch (err) {
        showError("Could not open the image", err);
        return;
      }
      remember(detail);
    }
    if (state.current !== guid) return;
    $("image-title").textContent = detail.prompt;
    const img = $("image-full");
    img.alt = detail.prompt;
    img.width = detail.width;
    img.height = detail.height;
    img.removeAttribute("src");
    const download = $("download");
    download.download = detail.filename;
    if (state.key) {
      download.href = "#";
      await fetchInto(img, [contentUrl(guid)]);
      download.href = img.src; // the blob fetched with the key
    } else {
      download.href = contentUrl(guid);
      showImage(img, [contentUrl(guid)], false);
    }
    renderDetails(detail);
    $("image-title").focus();
    await renderLineage(detail);
  }

  async function copyShareLink() {
    const status = $("share-status");
    status.textContent = "Getting a link…";
    try {
      const { url, expires_at: expiresAt } = await json(`/image/${state.current}/url`);
      const absolute = new URL(url, location.href).href;
      let copied = false;
      try {
        await navigator.clipboard.writeText(absolute);
        copied = true;
      } catch {
        copied = false; // no clipboard here (a plain-http page): the link is shown to copy by hand
      }
      status.textContent = `${copied ? "Link copied" : "Copy this link"}: ${absolute}${expiresAt ? ` (valid until ${formatTime(expiresAt)})` : ""}`;
    } catch (err) {
      status.textContent = "";
      showError("Could not make a share link", err);
    }
  }

  async function submitEdit(event) {
    event.preventDefault();
    const prompt = $("edit-prompt").value.trim();
    if (!prompt) return;
    const button = $("edit-submit");
    const source = state.current;
    button.disabled = true;
    $("edit-status").textContent = "Editing… the result opens when it is ready.";
    try {
      const detail = await (await postJson(`/image/${source}/edits`, { prompt })).json();
      addTiles([detail], true);
      $("edit-prompt").value = "";
      $("edit-status").textContent = "";
      clearError();
      location.hash = `#/image/${detail.guid}`;
    } catch (err) {
      $("edit-status").textContent = "";
      showError("Could not edit the image", err);
    } finally {
      button.disabled = false;
    }
  }

  function confirmDelete() {
    const dialog = $("confirm-dialog");
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  async function deleteCurrent() {
    const guid = state.current;
    if (!(await confirmDelete())) return;
    try {
      await api(`/image/${guid}`, { method: "DELETE" });
    } catch (err) {
      if (err.status !== 404) {
        showError("Could not delete the image", err);
        return;
      }
    }
    removeTile(guid);
    clearError();
    $("grid-status").textContent = "The image was deleted.";
    location.hash = "#/";
  }

  function onImageKey(event) {
    if ($("image-view").hidden || event.target.closest("input, textarea, select, dialog")) return;
    if (event.key === "Escape") {
      location.hash = "#/";
      return;
    }
    const step = { ArrowLeft: -1, ArrowRight: 1 }[event.key];
    if (!step) return;
    const at = state.order.indexOf(state.current);
    const target = state.order[at + step];
    if (at >= 0 && target) location.hash = `#/image/${target}`;
  }

  // ---- generating ----------------------------------------------------------------------------------

  function generationBody() {
    const form = $("generate");
    const body = {};
    for (const element of form.elements) {
      if (!element.name || element.disabled || element.value.trim() === "") continue;
      const numeric = element.type === "number" || element.name === "partial_images";
      body[element.name] = numeric ? Number(element.value) : element.value.trim();
    }
    return body;
  }

  // The bar shows `fraction` (0..1) where one is known, and moves without a value otherwise.
  function setProgress(text, done, fraction = null) {
    $("progress").hidden = false;
    $("progress-status").textContent = text;
    const bar = $("progress-bar");
    const value = done ? 1 : fraction;
    if (typeof value === "number" && Number.isFinite(value)) {
      bar.max = 1;
      bar.value = Math.min(1, Math.max(0, value));
    } else {
      bar.removeAttribute("value");
    }
  }

  function addPartial(data, format) {
    if (!data || typeof data.b64_json !== "string") return;
    const li = document.createElement("li");
    const img = document.createElement("img");
    img.alt = `Preview ${Number(data.index) + 1} of the image being made`;
    img.src = `data:image/${format || "png"};base64,${data.b64_json}`;
    li.append(img);
    $("partials").append(li);
    $("progress-status").textContent = `Generating… preview ${Number(data.index) + 1} arrived.`;
  }

  // Server-Sent Events read from fetch() (EventSource cannot send the key).
  async function* events(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let carry = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      let text = carry + value;
      carry = text.endsWith("\r") ? "\r" : ""; // a CRLF split across two reads
      if (carry) text = text.slice(0, -1);
      buffer += text.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") name = val;
          else if (field === "data") data.push(val);
        }
        if (data.length) yield { name, data: data.join("\n") };
      }
    }
  }

  function fractionOf(value) {
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  }

  function describeJob(job, fraction) {
    let text = STATUS_WORDS[job.status] || job.status;
    if (job.status === "running" && job.attempts > 1) text += ` (attempt ${job.attempts})`;
    if (job.status === "running" && fraction !== null) text += ` ${Math.floor(fraction * 100)}%`;
    return text;
  }

  async function followJob(job, format) {
    let latest = job;
    let fraction = fractionOf(job.progress);
    const show = () => setProgress(describeJob(latest, fraction), false, fraction);
    show();
    if (state.can.events) {
      try {
        const response = await api(`/image/jobs/${encodeURIComponent(job.id)}/events`, {
          headers: { Accept: "text/event-stream" },
        });
        for await (const event of events(response)) {
          let data = null;
          try {
            data = JSON.parse(event.data);
          } catch {
            data = null;
          }
          if (event.name === "partial_image") addPartial(data, format);
          else if (event.name === "progress") {
            if (data && fractionOf(data.progress) !== null) {
              fraction = data.progress;
              show();
            }
          } else if (data && data.status) {
            latest = data;
            fraction = fractionOf(data.progress) ?? fraction;
            if (!TERMINAL.has(data.status)) show();
          }
          if (event.name === "done" || TERMINAL.has(latest.status)) break;
        }
      } catch (err) {
        if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 405)) throw err;
      }
    }
    // The stream ended, or there is none: ask for the job until it has finished.
    while (!TERMINAL.has(latest.status)) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      latest = await json(`/image/jobs/${encodeURIComponent(job.id)}`);
      fraction = fractionOf(latest.progress) ?? fraction;
      show();
    }
    return latest;
  }

  async function submitGeneration(event) {
    event.preventDefault();
    const body = generationBody();
    if (!body.prompt) return;
    const button = $("gen-submit");
    button.disabled = true;
    $("partials").replaceChildren();
    clearError();
    const format = body.output_format;
    try {
      let made = [];
      if (state.can.jobs) {
        setProgress("Sending…", false);
        const job = await (await postJson("/image/jobs", body)).json();
        const finished = await followJob(job, format);
        if (finished.status !== "succeeded") {
          const error = finished.error || {};
          setProgress(STATUS_WORDS[finished.status] || finished.status, true);
          showError(STATUS_WORDS[finished.status] || "The generation did not finish",
            new ApiError(0, error.code, error.detail || "no reason was given", error.request_id || null));
          return;
        }
        made = (finished.images || []).filter((image) => image && image.guid && image.prompt);
      } else {
        // No jobs here: one image per request, answered when it is made.
        const count = body.n || 1;
        delete body.n;
        delete body.partial_images;
        for (let i = 0; i < count; i += 1) {
          setProgress(count > 1 ? `Generating ${i + 1} of ${count}…` : "Generating…", false);
          made.push(await (await postJson("/image/", body)).json());
        }
      }
      addTiles(made.slice().reverse(), true);
      const words = made.length === 1 ? "The new image is" : `${made.length} new images are`;
      setProgress(`Done. ${words} at the top of the gallery.`, true);
      $("gen-prompt").value = "";
      $("grid").querySelector(".tile a")?.scrollIntoView({ block: "nearest" });
    } catch (err) {
      setProgress("Not generated.", true);
      showError("Could not generate the image", err);
    } finally {
      button.disabled = false;
    }
  }

  function toggleGenerate(open) {
    const panel = $("generate-panel");
    const show = open === undefined ? panel.hidden : open;
    if (show && location.hash.startsWith("#/image/")) location.hash = "#/";
    panel.hidden = !show;
    $("open-generate").setAttribute("aria-expanded", String(show));
    if (show) $("gen-prompt").focus();
    else $("open-generate").focus();
  }

  // ---- views ---------------------------------------------------------------------------------------

  function route() {
    const match = location.hash.match(/^#\/image\/([0-9a-fA-F-]{32,36})$/);
    if (match) {
      if (!$("grid-view").hidden) state.gridScroll = window.scrollY;
      $("grid-view").hidden = true;
      $("generate-panel").hidden = true;
      $("open-generate").setAttribute("aria-expanded", "false");
      $("image-view").hidden = false;
      window.scrollTo(0, 0);
      openImage(match[1]);
      return;
    }
    const from = state.current;
    state.current = null;
    $("image-view").hidden = true;
    $("grid-view").hidden = false;
    window.scrollTo(0, state.gridScroll);
    const tile = from && $("grid").querySelector(`[data-guid="${from}"] a`);
    if (tile) tile.focus({ preventScroll: true });
  }

  async function start() {
    $("search").addEventListener("submit", (event) => {
      event.preventDefault();
      resetGrid();
    });
    $("model").addEventListener("change", resetGrid);
    $("open-generate").addEventListener("click", () => toggleGenerate());
    $("gen-cancel").addEventListener("click", () => toggleGenerate(false));
    $("generate").addEventListener("submit", submitGeneration);
    $("gen-model").addEventListener("input", fitForm);
    $("gen-format").addEventListener("change", fitForm);
    $("edit").addEventListener("submit", submitEdit);
    $("share").addEventListener("click", copyShareLink);
    $("delete").addEventListener("click", deleteCurrent);
    $("more").addEventListener("click", loadMore);
    $("notice-close").addEventListener("click", clearError);
    $("forget-key").addEventListener("click", () => {
      forgetKey();
      location.reload();
    });
    $("key-dialog").addEventListener("cancel", (event) => event.preventDefault()); // nothing works without one
    $("grid").addEventListener("keydown", onGridKey);
    document.addEventListener("keydown", onImageKey);
    window.addEventListener("hashchange", route);

    $("forget-key").hidden = !state.key;
    readOffer();
    if (!state.can.search && !state.can.model) $("search").hidden = true;
    else {
      $("q").disabled = !state.can.search;
      $("model").disabled = !state.can.model;
    }
    if (state.can.keys && !state.key) await askForKey("");
    route();
    resetGrid();
    readModels();
    // Infinite scroll: the next page as the end of the grid comes near (the button does it by keyboard).
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !$("grid-view").hidden) loadMore();
    }, { rootMargin: "0px 0px 600px 0px" }).observe($("sentinel"));
  }

  start();
})();
