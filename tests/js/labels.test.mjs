// web/static/queue/labels.js: the verdict buttons come from the label words the task carries.
import assert from "node:assert/strict";
import {test} from "node:test";

import {humanize, labelActions, labelHelp} from "../../web/static/queue/labels.js";

const PAGE_KEYS = ["k", "f", "v", "=", "+", "-", "?"];

test("each word gets its first letter and its position number, in the order sent", () => {
  const actions = labelActions(["accept", "reject", "ungroundable"], {reserved: [...PAGE_KEYS, "z"]});
  assert.deepEqual(actions.map((a) => [a.label, a.text, a.keys, a.hint]), [
    ["accept", "Accept", ["a", "1"], "A"], ["reject", "Reject", ["r", "2"], "R"],
    ["ungroundable", "Ungroundable", ["u", "3"], "U"]]);
  assert.deepEqual(labelHelp(actions)[0], ["A, 1", "Accept"]);
});

test("a word the page has never seen is shown as itself, with a key", () => {
  const actions = labelActions(["complete", "missing", "not_present", "blurry"], {reserved: PAGE_KEYS});
  assert.deepEqual(actions.map((a) => [a.text, a.keys]), [
    ["Complete", ["c", "1"]], ["Missing", ["m", "2"]], ["Not present", ["n", "3"]], ["Blurry", ["b", "4"]]]);
});

test("first letters shared by two words, or reserved, fall back to the position number", () => {
  const actions = labelActions(["keep", "kill", "fine"], {reserved: PAGE_KEYS});
  assert.deepEqual(actions.map((a) => a.keys), [["1"], ["2"], ["3"]]); // k is the page's skip, f its fit
});

test("hints add a key, a tone and help to a word, which still reads as itself; reserved digits are not used", () => {
  const digits = ["1", "2", "3", "4", "5", "6", "7", "8", "9"];
  const actions = labelActions(["corrected", "not_present"], {
    reserved: [...PAGE_KEYS, "c", ...digits],
    hints: {corrected: {key: "s", tone: "ok", help: "submit the masks"}},
  });
  assert.deepEqual(actions.map((a) => [a.label, a.text, a.tone, a.keys, a.hint]), [
    ["corrected", "Corrected", "ok", ["s"], "S"], ["not_present", "Not present", "", ["n"], "N"]]);
  assert.deepEqual(labelHelp(actions), [["S", "submit the masks"], ["N", "Not present"]]);
});

test("no labels, no buttons; a word without any free key still gets its button", () => {
  assert.deepEqual(labelActions(undefined), []);
  const [only] = labelActions(["fine"], {reserved: ["f", "1"]});
  assert.deepEqual([only.keys, only.hint], [[], ""]);
  assert.deepEqual(labelHelp([only]), []);
  assert.equal(humanize("not_present"), "Not present");
});

test("the keys the API sends come first; a reserved one is not taken, the word keeps its number", () => {
  const actions = labelActions(["corrected", "not_present", "blurry"], {
    keys: {corrected: "s", not_present: "n", blurry: "k"},  // k is the page's skip
    reserved: [...PAGE_KEYS, "c"],
    hints: {corrected: {key: "x", tone: "ok"}},
  });
  assert.deepEqual(actions.map((a) => [a.label, a.keys, a.hint]), [
    ["corrected", ["s", "1"], "S"], ["not_present", ["n", "2"], "N"], ["blurry", ["3"], "3"]]);
});
