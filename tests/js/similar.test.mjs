// web/static/queue/similar.js: what the "Similar images" strip shows, and that it asks nothing until opened.
import assert from "node:assert/strict";
import {test} from "node:test";

import {NO_EMBEDDING, NOT_AN_IMAGE, SimilarStrip, searchableImage, similarView, similarityText}
  from "../../web/static/queue/similar.js";

test("neighbours become thumbnails of the image endpoint with their similarity", () => {
  const view = similarView({image_id: 3, model_version_id: 1,
    neighbours: [{image_id: 7, similarity: 0.9349}, {image_id: 0, similarity: 1}, {image_id: 9, similarity: 0.5}]});
  assert.equal(view.message, "");
  assert.deepEqual(view.items.map((i) => [i.imageId, i.url, i.text]),
    [[7, "/api/v1/images/7", "0.93"], [9, "/api/v1/images/9", "0.50"]]); // a bad id is left out
  assert.equal(similarityText("x"), "?");
});

test("no embedding (the 404 body) and no neighbours have their own text", () => {
  assert.deepEqual(similarView({detail: "image 3 has no embedding of model version 1"}), {message: NO_EMBEDDING, items: []});
  assert.equal(similarView({neighbours: []}).message, "No other image has an embedding yet.");
});

test("only image tasks are searched", () => {
  assert.equal(searchableImage({media: "image", image: {id: 4}}), 4);
  assert.equal(searchableImage({media: "video", video: {id: 2}}), null);
  assert.equal(searchableImage({image: {id: "x"}}), null);
  assert.equal(searchableImage(null), null);
});

function fakeNodes() {
  const node = () => ({hidden: true, textContent: "", dataset: {}, children: [], attrs: {},
    replaceChildren(...c) { this.children = c; }, setAttribute(k, v) { this.attrs[k] = v; }});
  return {section: node(), status: node(), list: node(), button: node()};
}
const el = (tag, attrs = {}, children = []) => ({tag, attrs, children});

test("nothing is asked until opened; an answer that comes after the task changed is dropped", async () => {
  const calls = [];
  let answer;
  const api = (method, path, body, opts) => {
    calls.push([method, path, opts.allow]);
    return new Promise((resolve) => { answer = resolve; });
  };
  const nodes = fakeNodes();
  const strip = new SimilarStrip({api, el, nodes, k: 5});
  assert.deepEqual(calls, []);
  strip.toggle({media: "image", image: {id: 12}});
  assert.equal(nodes.section.hidden, false);
  assert.deepEqual(calls, [["GET", "/images/12/similar?k=5", [404]]]);
  strip.close(); // the next task is shown
  answer({neighbours: [{image_id: 4, similarity: 0.8}]});
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(nodes.list.children.length, 0);
  assert.equal(nodes.section.hidden, true);
  strip.toggle({media: "image", image: {id: 13}});
  answer({neighbours: [{image_id: 4, similarity: 0.8}]});
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(nodes.list.children.length, 1);
  assert.equal(nodes.list.children[0].attrs["data-image-id"], "4");
  assert.equal(nodes.section.dataset.state, "ready");
  strip.toggle(null); // open: L closes it
  assert.equal(nodes.section.hidden, true);
  strip.toggle({media: "video"});
  assert.equal(nodes.status.textContent, NOT_AN_IMAGE);
  assert.equal(calls.length, 2);
});
