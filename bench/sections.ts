/**
 * docs/benchmarks.md after a run of some benches only (`npm run bench -- <name>...`): each section
 * that ran replaces its own section, found by the heading line that names `bench/<name>.bench.ts`
 * (or, failing that, the same heading text), up to the next `## ` heading; a section the page does
 * not have yet is appended. Everything else on the page stays as it was.
 */
export function replaceSections(doc: string, sections: ReadonlyArray<{ name: string; markdown: string }>): string {
  let lines = doc.replace(/\n+$/, '').split('\n');
  for (const { name, markdown } of sections) {
    const text = markdown.trim().split('\n');
    const heading = text[0];
    let start = lines.findIndex((line) => line.startsWith('## ') && line.includes(`bench/${name}.bench.ts`));
    if (start < 0) start = lines.indexOf(heading);
    if (start < 0) {
      lines = [...lines, '', ...text];
      continue;
    }
    let end = lines.findIndex((line, i) => i > start && line.startsWith('## '));
    if (end < 0) end = lines.length;
    lines = [...lines.slice(0, start), ...text, ...(end < lines.length ? [''] : []), ...lines.slice(end)];
  }
  return `${lines.join('\n')}\n`;
}
