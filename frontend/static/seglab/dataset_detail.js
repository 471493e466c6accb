// Dataset page: each sample's mask is overlaid on its image in a canvas, in the colours
// of the class table, with an opacity slider and a checkbox per class. The server sends
// the labels as a single-channel picture (one byte per pixel: the class index, 255 =
// ignore), so the page reads class indices whatever the uploaded masks' encoding.

const IGNORE_INDEX = 255;
const colorsNode = document.getElementById("overlay-colors");

function hexToRgb(color) {
  const text = color.replace("#", "");
  return [0, 2, 4].map((i) => parseInt(text.slice(i, i + 2), 16));
}

function pixelsOf(image, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(image, 0, 0, width, height);
  return context.getImageData(0, 0, width, height).data;
}

async function load(url) {
  const image = new Image();
  image.src = url;
  await image.decode();
  return image;
}

function setUp() {
  const classes = JSON.parse(colorsNode.textContent);
  const palette = new Uint8ClampedArray(256 * 3);
  const shown = new Uint8Array(256);
  for (const c of classes) {
    palette.set(hexToRgb(c.color), c.index * 3);
    shown[c.index] = 1;
  }
  const slider = document.getElementById("overlay-opacity");
  const samples = [];

  function draw(sample) {
    const { canvas, image, labels } = sample;
    const context = canvas.getContext("2d");
    const out = context.createImageData(canvas.width, canvas.height);
    const alpha = Number(slider.value) / 100;
    for (let p = 0; p < out.data.length; p += 4) {
      const label = labels[p];
      const on = label !== IGNORE_INDEX && shown[label] === 1;
      for (let k = 0; k < 3; k += 1) {
        out.data[p + k] = on ? image[p + k] * (1 - alpha) + palette[label * 3 + k] * alpha : image[p + k];
      }
      out.data[p + 3] = 255;
    }
    context.putImageData(out, 0, 0);
  }

  const redraw = () => samples.forEach(draw);
  slider.addEventListener("input", redraw);
  for (const box of document.querySelectorAll("#overlay-toggles input[type=checkbox]")) {
    box.addEventListener("change", () => {
      shown[Number(box.dataset.class)] = box.checked ? 1 : 0;
      redraw();
    });
  }
  for (const canvas of document.querySelectorAll("#sample-grid canvas")) {
    Promise.all([load(canvas.dataset.image), load(canvas.dataset.labels)]).then(([image, labels]) => {
      const sample = { canvas, image: pixelsOf(image, canvas.width, canvas.height),
        labels: pixelsOf(labels, canvas.width, canvas.height) };
      samples.push(sample);
      draw(sample);
      canvas.dataset.drawn = "true";
    }).catch(() => {
      canvas.dataset.drawn = "failed";
      canvas.setAttribute("title", "This sample could not be loaded.");
    });
  }
}

if (colorsNode) setUp();
