// The "Similar images" strip of the task page: the current image's nearest neighbours by image embedding
// (GET /images/{id}/similar), each a thumbnail from the image endpoint the page already uses with its
// cosine similarity. Nothing is asked until the annotator opens the strip (L or its button): moving to the
// next task closes it and sends no request, so judging task after task never waits on it; an answer that
// comes back after the task changed is dropped.
//
// No import of ui.js (its DE global is the browser's): the page hands in its element builder, so the pure
// part (similarView) runs in Node's test runner as well.

export const NEIGHBOURS = 8;
export const NO_EMBEDDING = "No embedding for this image yet: it gets one when the propose stage runs on it "
  + "(or `dataengine index embed`).";
export const NOT_AN_IMAGE = "Similar images are shown for image tasks only.";

/** The image id of a task whose image can be searched, else null (video tasks, tasks without an image). */
export function searchableImage(task) {
  if (!task || task.media === "video") return null;
  const id = Number(task.image?.id);
  return Number.isInteger(id) && id > 0 ? id : null;
}

/** "0.934" → "0.93": similarity shown with two decimals (cosine, 1 for the same direction). */
export function similarityText(value) {
  const n = Number(value);
  return Number.isFinite(n) ? n.toFixed(2) : "?";
}

/**
 * What the strip shows for an API answer: {message, items: [{imageId, url, similarity, text}]}.
 * answer: the JSON of /images/{id}/similar (neighbours), or the 404 body when the image has no embedding.
 */
export function similarView(answer, imageUrl = (id) => `/api/v1/images/${id}`) {
  if (!Array.isArray(answer?.neighbours)) return {message: NO_EMBEDDING, items: []};
  const items = answer.neighbours
    .filter((n) => Number.isInteger(n?.image_id) && n.image_id > 0)
    .map((n) => ({imageId: n.image_id, url: imageUrl(n.image_id), similarity: Number(n.similarity),
      text: similarityText(n.similarity)}));
  return {message: items.length ? "" : "No other image has an embedding yet.", items};
}

export class SimilarStrip {
  /** api: api.js request; el: the page's element builder (text only); nodes: {section, status, list, button}. */
  constructor({api, el, nodes, k = NEIGHBOURS}) {
    this.api = api;
    this.el = el;
    this.nodes = nodes;
    this.k = k;
    this.seq = 0; // the latest load; older answers are dropped
    this.open = false;
  }

  /** Open the strip on ``task``'s image (and load its neighbours), or close it when open. */
  toggle(task) {
    if (this.open) { this.close(); return; }
    this.open = true;
    this.nodes.section.hidden = false;
    this.nodes.button?.setAttribute("aria-expanded", "true");
    this.load(task);
  }

  /** Hide the strip and forget its content (the task changed, or the annotator closed it). */
  close() {
    this.seq += 1;
    this.open = false;
    this.nodes.section.hidden = true;
    this.nodes.button?.setAttribute("aria-expanded", "false");
    this.nodes.list.replaceChildren();
    this.setStatus("", "");
  }

  async load(task) {
    const seq = ++this.seq;
    const imageId = searchableImage(task);
    this.nodes.list.replaceChildren();
    if (imageId === null) { this.setStatus(NOT_AN_IMAGE, "empty"); return; }
    this.setStatus("Loading similar images…", "loading");
    let answer;
    try {
      answer = await this.api("GET", `/images/${imageId}/similar?k=${this.k}`, undefined, {allow: [404]});
    } catch (err) {
      if (seq === this.seq) this.setStatus(`Similar images cannot be loaded: ${err.message}`, "error");
      return;
    }
    if (seq !== this.seq) return; // closed, or the task changed meanwhile
    const view = similarView(answer);
    this.setStatus(view.message, view.items.length ? "ready" : "empty");
    this.nodes.list.replaceChildren(...view.items.map((item) => this.el("li", {"data-image-id": String(item.imageId)}, [
      this.el("img", {src: item.url, alt: `image ${item.imageId}`, loading: "lazy", decoding: "async",
        title: `image ${item.imageId}: similarity ${item.text}`}),
      this.el("span", {class: "similarity", text: item.text}),
    ])));
  }

  setStatus(text, state) {
    this.nodes.status.textContent = text;
    this.nodes.section.dataset.state = state;
  }
}
