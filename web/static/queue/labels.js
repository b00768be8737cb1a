// The verdict buttons of a task, pure: built from the label words the API sends with each task
// (task.labels, in the order to show), never from a list of our own. Each label gets its keys:
//   - a letter: the key the API sends for the word (task.keys), else the kind's hint for the word if it
//     has one, else the word's first letter when no other
//     label of the task starts with it; never a key the kind or the page already uses (reserved);
//   - its position number (1–9) unless that is reserved (the correct kind selects masks with digits).
// Each button reads as its word ("not_present" → "Not present"). A kind's hints ({word: {key, tone,
// help}}) only add a key, a colour and a help line; a word without a hint is still shown, with a
// derived key.

/** "not_present" → "Not present" */
export function humanize(word) {
  const text = String(word).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * labels: the task's label words; keys: the API's {word: key} (task.keys); reserved: keys used otherwise;
 * hints: {word: {key, tone, help}}.
 * → [{label, text, tone, help, keys: ["a", "1"], hint: "A"}] (hint: the key shown on the button, "" if none)
 */
export function labelActions(labels, {keys = {}, reserved = [], hints = {}} = {}) {
  const words = (Array.isArray(labels) ? labels : []).map(String);
  const taken = new Set(reserved);
  const firsts = words.map((w) => w.charAt(0).toLowerCase());
  const letters = words.map((word, i) => {
    const hinted = (keys && typeof keys[word] === "string" ? keys[word] : "") || hints[word]?.key;
    if (hinted) return hinted.toLowerCase();
    return firsts.indexOf(firsts[i]) === firsts.lastIndexOf(firsts[i]) ? firsts[i] : null;
  });
  return words.map((word, i) => {
    const hint = hints[word] || {};
    const keys = [];
    for (const key of [letters[i], i < 9 ? String(i + 1) : null]) {
      if (key && !taken.has(key)) {
        keys.push(key);
        taken.add(key);
      }
    }
    return {label: word, text: humanize(word), tone: hint.tone || "", help: hint.help || humanize(word),
      keys, hint: keys.length ? keys[0].toUpperCase() : ""};
  });
}

/** The help lines of the actions: [["A, 1", help], …] */
export function labelHelp(actions) {
  return actions.filter((a) => a.keys.length).map((a) => [a.keys.map((k) => k.toUpperCase()).join(", "), a.help]);
}
