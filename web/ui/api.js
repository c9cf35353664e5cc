// Renders the Console's OpenAPI 3 document (openapi.json) as a readable reference. Plain
// browser JavaScript; no external resources.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const esc = (s) =>
    String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const METHODS = ["get", "post", "put", "patch", "delete"];
  let doc;

  // Minimal Markdown for descriptions: paragraphs, `code`, **bold**.
  function md(text) {
    if (!text) return "";
    return String(text)
      .split(/\n{2,}/)
      .map(
        (p) =>
          `<p>${esc(p)
            .replace(/`([^`]+)`/g, "<code>$1</code>")
            .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")}</p>`,
      )
      .join("");
  }
  function resolve(obj) {
    let o = obj;
    for (let i = 0; o && o.$ref && i < 10; i++) {
      const parts = o.$ref.replace(/^#\//, "").split("/");
      o = parts.reduce((a, k) => (a ? a[k] : undefined), doc);
    }
    return o || {};
  }
  const refName = (r) => r.split("/").pop();
  const anchor = (method, path) => `op-${method}-${path.replace(/[^a-zA-Z0-9]+/g, "-")}`;

  // One-line description of a schema: type, format, enum, link to a named model.
  function schemaText(s) {
    if (!s) return "";
    if (s.$ref) {
      const name = refName(s.$ref);
      return `<a href="#model-${esc(name)}">${esc(name)}</a>`;
    }
    if (s.allOf) return s.allOf.map(schemaText).join(" + ");
    if (s.type === "array") return `array of ${schemaText(s.items)}`;
    let t = esc(s.type || "any");
    if (s.format) t += ` (${esc(s.format)})`;
    if (s.nullable) t += " | null";
    return t;
  }
  function constraints(s) {
    if (!s) return "";
    s = s.$ref ? resolve(s) : s;
    const bits = [];
    if (s.enum) bits.push(`one of: ${s.enum.map((v) => `<code>${esc(JSON.stringify(v))}</code>`).join(", ")}`);
    if (s.items && s.items.$ref) {
      const it = resolve(s.items);
      if (it.enum) bits.push(`values: ${it.enum.map((v) => `<code>${esc(v)}</code>`).join(", ")}`);
    }
    if (s.minimum !== undefined || s.maximum !== undefined) bits.push(`range ${s.minimum ?? "…"}..${s.maximum ?? "…"}`);
    if (s.default !== undefined) bits.push(`default <code>${esc(JSON.stringify(s.default))}</code>`);
    return bits.length ? `<div class="enum">${bits.join("; ")}</div>` : "";
  }

  function paramsTable(params) {
    if (!params.length) return "";
    return (
      `<h3>Parameters</h3><table class="params"><thead><tr><th scope="col">Name</th><th scope="col">In</th><th scope="col">Type</th><th scope="col">Description</th></tr></thead><tbody>` +
      params
        .map((p0) => {
          const p = resolve(p0);
          return `<tr><td><code>${esc(p.name)}</code>${p.required ? '<span class="req">required</span>' : ""}</td><td>${esc(p.in)}</td>` +
            `<td class="schema">${schemaText(p.schema)}</td><td>${md(p.description)}${constraints(p.schema)}</td></tr>`;
        })
        .join("") +
      `</tbody></table>`
    );
  }
  function bodyHtml(rb) {
    if (!rb) return "";
    rb = resolve(rb);
    return (
      `<h3>Request body</h3>` +
      Object.entries(rb.content || {})
        .map(([type, c]) => {
          let html = `<p><code>${esc(type)}</code> — <span class="schema">${schemaText(c.schema)}</span>${rb.required ? ' <span class="req">required</span>' : ""}</p>`;
          if (c.example !== undefined) html += `<pre class="json" tabindex="0">${esc(JSON.stringify(c.example, null, 2))}</pre>`;
          return html;
        })
        .join("")
    );
  }
  function responsesHtml(responses) {
    return (
      `<h3>Responses</h3><table class="params"><thead><tr><th scope="col">Status</th><th scope="col">Description</th><th scope="col">Body</th></tr></thead><tbody>` +
      Object.entries(responses || {})
        .map(([code, r0]) => {
          const r = resolve(r0);
          const body = Object.entries(r.content || {})
            .map(([type, c]) => `<code>${esc(type)}</code> <span class="schema">${schemaText(c.schema)}</span>`)
            .join("<br>");
          const headers = Object.keys(r.headers || {}).map((h) => `header <code>${esc(h)}</code>`).join(", ");
          return `<tr><td><span class="status s${esc(code[0])}">${esc(code)}</span></td><td>${md(r.description)}</td><td>${body}${headers ? `<div class="enum">${headers}</div>` : ""}</td></tr>`;
        })
        .join("") +
      `</tbody></table>`
    );
  }
  function serverNote(item) {
    const s = item.servers && item.servers[0];
    if (!s) return "";
    const port = s.variables && s.variables.port ? s.variables.port.default : "";
    return `<span class="server-note">defender channel${port ? ` · port ${esc(port)}` : ""}</span>`;
  }

  function modelHtml(name, s) {
    // Focusable: a model wider than a narrow screen scrolls sideways, which the keyboard must reach.
    let html = `<section class="model" id="model-${esc(name)}" tabindex="0" aria-label="Model ${esc(name)}"><h3>${esc(name)}</h3>${md(s.description)}`;
    if (s.allOf) html += `<p class="schema">${schemaText(s)}</p>`;
    for (const part of s.allOf ? s.allOf.filter((x) => !x.$ref) : [s]) {
      if (part.properties) {
        const req = new Set(part.required || []);
        html +=
          `<table class="params"><thead><tr><th scope="col">Field</th><th scope="col">Type</th><th scope="col">Description</th></tr></thead><tbody>` +
          Object.entries(part.properties)
            .map(([k, v]) => `<tr><td><code>${esc(k)}</code>${req.has(k) ? '<span class="req">required</span>' : ""}</td><td class="schema">${schemaText(v)}</td><td>${md(v.description)}${constraints(v)}</td></tr>`)
            .join("") +
          `</tbody></table>`;
      } else if (part.enum) {
        html += `<p class="schema">${schemaText(part)}</p>${constraints(part)}`;
      }
    }
    if (s.example) html += `<h3>Example</h3><pre class="json" tabindex="0">${esc(JSON.stringify(s.example, null, 2))}</pre>`;
    return html + `</section>`;
  }

  function render() {
    $("api-title").textContent = doc.info.title;
    $("api-version").textContent = `API version ${doc.info.version}, OpenAPI ${doc.openapi}.`;
    $("api-intro").innerHTML = md(doc.info.description);
    const ops = [];
    for (const [path, item] of Object.entries(doc.paths))
      for (const m of METHODS)
        if (item[m]) ops.push({ path, method: m, op: item[m], item });
    const tags = (doc.tags || []).map((t) => t.name);
    for (const o of ops) for (const t of o.op.tags || ["Other"]) if (!tags.includes(t)) tags.push(t);

    let toc = "";
    let body = "";
    for (const tag of tags) {
      const mine = ops.filter((o) => (o.op.tags || ["Other"]).includes(tag));
      if (!mine.length) continue;
      const tdesc = (doc.tags || []).find((t) => t.name === tag)?.description;
      toc += `<h2>${esc(tag)}</h2>`;
      body += `<section class="api-tag"><h2>${esc(tag)}</h2>${tdesc ? md(tdesc) : ""}`;
      for (const { path, method, op, item } of mine) {
        const id = anchor(method, path);
        toc += `<a href="#${id}"><span class="method ${method}">${method}</span><code>${esc(path)}</code></a>`;
        const params = [...(item.parameters || []), ...(op.parameters || [])];
        body +=
          `<article class="op" id="${id}" aria-labelledby="${id}-h"><div class="op-head" id="${id}-h">` +
          `<span class="method ${method}">${method}</span><code>${esc(path)}</code><span class="op-sum">${esc(op.summary || "")}</span>${serverNote(item)}</div>` +
          `<div class="op-body">${md(op.description)}${paramsTable(params)}${bodyHtml(op.requestBody)}${responsesHtml(op.responses)}</div></article>`;
      }
      body += `</section>`;
    }
    const schemas = Object.entries((doc.components && doc.components.schemas) || {});
    if (schemas.length) {
      toc += `<h2>Models</h2>` + schemas.map(([n]) => `<a href="#model-${esc(n)}"><code>${esc(n)}</code></a>`).join("");
      body += `<section class="api-tag"><h2>Models</h2>` + schemas.map(([n, s]) => modelHtml(n, s)).join("") + `</section>`;
    }
    // On a narrow window the list of endpoints starts folded.
    $("toc").innerHTML = `<details id="toc-details"${window.innerWidth > 800 ? " open" : ""}><summary>Endpoints and models</summary>${toc}</details>`;
    $("api-body").innerHTML = body;
    if (location.hash) requestAnimationFrame(() => document.getElementById(location.hash.slice(1))?.scrollIntoView());
  }

  fetch("openapi.json", { cache: "no-store" })
    .then((r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return r.json();
    })
    .then((d) => {
      doc = d;
      render();
    })
    .catch((e) => {
      $("api-body").innerHTML = `<p class="error">Could not load openapi.json: ${esc(e.message)}. Is the Console running?</p>`;
    });
})();
