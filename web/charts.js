// tailor's charts: inline SVG with axes, ticks, units and legends (every point stays in the
// DOM, where tests count them). Served at /assets/charts.js; needs /assets/lib.js.
(function () {
  "use strict";
  var lib = window.tailorLib;
  var esc = lib.esc;
  var COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];
  var HOUR = 3600000;
  var DAY = 24 * HOUR;

  // About `n` round ticks covering [lo, hi] (steps of 1, 2 or 5 × 10^k; at least 1 with
  // `integer`), with the decimals their labels need to differ (a step of 0.0002 needs 4).
  function ticks(lo, hi, n, integer) {
    if (!(hi > lo)) hi = lo + (integer ? 1 : Math.abs(lo) * 0.1 || 1);
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    [1, 2, 5, 10].some(function (m) {
      if ((hi - lo) / (step * m) <= n) {
        step *= m;
        return true;
      }
      return false;
    });
    if (integer) step = Math.max(1, Math.round(step));
    var decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    var values = [];
    for (var v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
      values.push(+v.toFixed(decimals));
    return { values: values, decimals: decimals };
  }

  // Ticks of a time axis (ms): minutes to quarters; labels show what changes.
  function timeTicks(lo, hi, n) {
    var MIN = 60000;
    var steps = [
      MIN,
      5 * MIN,
      15 * MIN,
      30 * MIN,
      HOUR,
      3 * HOUR,
      6 * HOUR,
      12 * HOUR,
      DAY,
      2 * DAY,
      7 * DAY,
      14 * DAY,
    ];
    steps.push(30 * DAY, 91 * DAY);
    var step =
      steps.filter(function (s) {
        return (hi - lo) / s <= n;
      })[0] || steps[steps.length - 1];
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(v);
    // Below a day: the hour, with the date at the first tick and at midnight.
    var label =
      step >= DAY
        ? function (t) {
            return lib.day(t).slice(5);
          }
        : function (t, i) {
            return i === 0 || t % DAY === 0 ? lib.when(t).slice(5) : lib.when(t).slice(11);
          };
    return { ticks: out, label: label };
  }

  // The q-quantile (0..1) of numbers (linear interpolation).
  function quantile(values, q) {
    var s = values.slice().sort(function (a, b) {
      return a - b;
    });
    if (!s.length) return NaN;
    var at = (s.length - 1) * q;
    var i = Math.floor(at);
    return i + 1 < s.length ? s[i] + (s[i + 1] - s[i]) * (at - i) : s[i];
  }

  // A frame for a cloud of points that outliers cannot squash: the 1st to 99th percentile,
  // widened by `margin` of its width; points outside are pinned to its edge by the caller.
  function robustFrame(values, margin) {
    var lo = quantile(values, 0.01);
    var hi = quantile(values, 0.99);
    if (!(hi > lo)) {
      lo = Math.min.apply(null, values);
      hi = Math.max.apply(null, values);
    }
    var pad = (hi - lo) * (margin == null ? 0.08 : margin) || 1;
    return [lo - pad, hi + pad];
  }

  // Places labels (each {x, y, w, h} anchored at its centre) so no two overlap: each, in
  // order, takes the first free spot on rings around its anchor, inside [0, W] × [0, H].
  // Returns the centres.
  function placeLabels(labels, W, H) {
    var placed = [];
    var hits = function (a, b) {
      return Math.abs(a.x - b.x) * 2 < a.w + b.w && Math.abs(a.y - b.y) * 2 < a.h + b.h;
    };
    return labels.map(function (l) {
      var best = null;
      for (var ring = 0; ring < 12 && !best; ring++) {
        var r = ring * l.h * 0.9;
        var tries = ring === 0 ? 1 : 12;
        for (var k = 0; k < tries && !best; k++) {
          var a = (2 * Math.PI * k) / tries;
          var c = { x: l.x + r * Math.cos(a) * 1.6, y: l.y + r * Math.sin(a), w: l.w, h: l.h };
          c.x = Math.min(Math.max(c.x, c.w / 2), W - c.w / 2);
          c.y = Math.min(Math.max(c.y, c.h / 2), H - c.h / 2);
          if (!placed.some(hits.bind(null, c))) best = c;
        }
      }
      best = best || { x: l.x, y: l.y, w: l.w, h: l.h };
      placed.push(best);
      return { x: best.x, y: best.y };
    });
  }

  function title(W, text) {
    var style = "font-size:18px;font-weight:600";
    return '<text x="' + W / 2 + '" y="16" text-anchor="middle" style="' + style + '">' + esc(text) + "</text>";
  }

  function axes(box, xTitle, yTitle) {
    var g = '<line x1="' + box.L + '" x2="' + box.L + '" y1="' + box.T + '" y2="' + box.bottom + '" stroke="#889"/>';
    g +=
      '<line x1="' + box.L + '" x2="' + box.right + '" y1="' + box.bottom + '" y2="' + box.bottom + '" stroke="#889"/>';
    var midX = box.L + (box.right - box.L) / 2;
    var midY = box.T + (box.bottom - box.T) / 2;
    g += '<text x="' + midX + '" y="' + (box.bottom + 40) + '" text-anchor="middle">' + esc(xTitle) + "</text>";
    g += '<text transform="translate(20,' + midY + ') rotate(-90)" text-anchor="middle">' + esc(yTitle) + "</text>";
    return g;
  }

  function legend(entries, height) {
    var items = entries.map(function (e) {
      var swatch = '<i style="background:' + e.color + (height ? ";height:" + height + "px" : "") + '"></i>';
      return "<span>" + swatch + esc(e.name) + "</span>";
    });
    return '<div class="legend">' + items.join("") + "</div>";
  }

  // opt: title, x, y (axis titles), series [{name, points: [[x, y, lo?, hi?]...], dash?, color?}]
  // (y null: a gap), time (x is ms), integer (x is whole numbers, e.g. versions), zero
  // (dashed line at 0), ymin, yfmt (tick formatter (value, decimals)), empty (why no data).
  function lineChart(opt) {
    var W = 860;
    var H = 320;
    var box = { L: 100, T: 30, right: W - 44, bottom: H - 48 };
    var xs = [];
    var ys = [];
    opt.series.forEach(function (s) {
      s.points.forEach(function (p) {
        if (p[1] == null) return;
        xs.push(p[0]);
        ys.push(p[1]);
        if (p.length > 3 && p[2] != null) ys.push(p[2], p[3]);
      });
    });
    if (opt.zero) ys.push(0);
    if (!xs.length) {
      return (
        '<p class="note">' + esc(opt.title) + ": no data yet" + (opt.empty ? " — " + esc(opt.empty) : "") + ".</p>"
      );
    }
    var x0 = Math.min.apply(null, xs);
    var x1 = Math.max.apply(null, xs);
    var y0 = Math.min.apply(null, ys);
    var y1 = Math.max.apply(null, ys);
    if (opt.ymin != null) y0 = Math.min(y0, opt.ymin);
    if (x1 === x0) {
      var half = opt.time ? HOUR : opt.integer ? 1 : 0.5;
      x0 -= half;
      x1 += half;
    }
    var padY = (y1 - y0) * 0.08 || Math.abs(y1) * 0.05 || 1;
    y1 += padY;
    if (opt.ymin == null) y0 -= padY;
    var X = function (v) {
      return box.L + ((v - x0) / (x1 - x0)) * (box.right - box.L);
    };
    var Y = function (v) {
      return box.T + (1 - (v - y0) / (y1 - y0)) * (box.bottom - box.T);
    };
    var yt = ticks(y0, y1, 6);
    var yfmt =
      opt.yfmt ||
      function (t, d) {
        return lib.fmt(t, d);
      };
    var g = '<svg class="chart" viewBox="0 0 ' + W + " " + H + '" role="img" aria-label="' + esc(opt.title) + '">';
    g += title(W, opt.title);
    yt.values.forEach(function (t) {
      g += '<line x1="' + box.L + '" x2="' + box.right + '" y1="' + Y(t) + '" y2="' + Y(t) + '" stroke="#eee"/>';
      g += '<text class="ytick" x="' + (box.L - 6) + '" y="' + (Y(t) + 4) + '" text-anchor="end">';
      g += esc(yfmt(t, yt.decimals)) + "</text>";
    });
    var xLabel = function (x, text) {
      return (
        '<text class="xtick" x="' + x + '" y="' + (box.bottom + 16) + '" text-anchor="middle">' + esc(text) + "</text>"
      );
    };
    if (opt.time) {
      var tt = timeTicks(x0, x1, 7);
      tt.ticks.forEach(function (t, i) {
        g += xLabel(X(t), tt.label(t, i));
      });
    } else {
      var xt = ticks(x0, x1, 8, opt.integer);
      xt.values.forEach(function (t) {
        g += xLabel(X(t), lib.fmt(t, xt.decimals));
      });
    }
    g += axes(box, opt.x, opt.y);
    if (opt.zero) {
      g += '<line x1="' + box.L + '" x2="' + box.right + '" y1="' + Y(0) + '" y2="' + Y(0) + '" stroke="#333"';
      g += ' stroke-dasharray="5,4"/>';
    }
    opt.series.forEach(function (s, i) {
      var c = s.color || COLORS[i % COLORS.length];
      var pts = s.points.filter(function (p) {
        return p[1] != null;
      });
      if (pts.length && pts[0].length > 3) {
        var upper = pts.map(function (p) {
          return X(p[0]) + "," + Y(p[2]);
        });
        var lower = pts
          .slice()
          .reverse()
          .map(function (p) {
            return X(p[0]) + "," + Y(p[3]);
          });
        g += '<polygon points="' + upper.concat(lower).join(" ") + '" fill="' + c + '" fill-opacity="0.18"/>';
      }
      // One polyline per run of values (nulls break the line).
      var run = [];
      var flush = function () {
        if (run.length) {
          var dash = s.dash ? ' stroke-dasharray="6,4"' : "";
          g += '<polyline fill="none" stroke="' + c + '" stroke-width="2"' + dash + ' points="' + run.join(" ") + '"/>';
        }
        run = [];
      };
      s.points.forEach(function (p) {
        if (p[1] == null) flush();
        else run.push(X(p[0]) + "," + Y(p[1]));
      });
      flush();
      if (pts.length <= 60) {
        pts.forEach(function (p) {
          g += '<circle cx="' + X(p[0]) + '" cy="' + Y(p[1]) + '" r="2.5" fill="' + c + '"><title>';
          g += esc(s.name + ": " + yfmt(p[1], yt.decimals + 1)) + "</title></circle>";
        });
      }
    });
    g += "</svg>";
    return (
      g +
      legend(
        opt.series.map(function (s, i) {
          return { name: s.name, color: s.color || COLORS[i % COLORS.length] };
        }),
      )
    );
  }

  // bars: [[label, value, text?]]. Long labels are cut with "…" to the room they get
  // (the whole label is the bar's tooltip); the value is written after the bar.
  function barChart(chartTitle, unit, bars) {
    var W = 860;
    var rowH = 26;
    var T = 30;
    var charW = 8.6;
    var longest = Math.max.apply(
      null,
      bars
        .map(function (b) {
          return String(b[0]).length;
        })
        .concat([4]),
    );
    var L = Math.min(360, 20 + charW * longest);
    var room = Math.floor((L - 14) / charW);
    var R = 150;
    var H = T + bars.length * rowH + 10;
    var max = Math.max.apply(
      null,
      bars
        .map(function (b) {
          return b[1];
        })
        .concat([1e-9]),
    );
    var g = '<svg class="chart" viewBox="0 0 ' + W + " " + H + '" role="img" aria-label="' + esc(chartTitle) + '">';
    g += title(W, chartTitle);
    bars.forEach(function (b, i) {
      var y = T + i * rowH;
      var w = ((W - L - R) * b[1]) / max;
      var text = String(b[0]);
      var shown = text.length > room ? text.slice(0, room - 1) + "…" : text;
      g += '<text class="bar-label" x="' + (L - 6) + '" y="' + (y + 18) + '" text-anchor="end"><title>' + esc(text);
      g += "</title>" + esc(shown) + "</text>";
      g += '<rect x="' + L + '" y="' + (y + 3) + '" width="' + w + '" height="' + (rowH - 6) + '" fill="';
      g += COLORS[i % COLORS.length] + '"><title>' + esc(text) + "</title></rect>";
      g +=
        '<text x="' + (L + w + 6) + '" y="' + (y + 18) + '">' + esc(b[2] || lib.fmt(b[1], 2) + " " + unit) + "</text>";
    });
    return g + "</svg>";
  }

  // A heat map: opt.rows [{name, cells: [{value, text, tip}]}] (value null: no cell), opt.x
  // and opt.y (axis titles), opt.max (the value of the darkest cell), opt.columns (names of
  // the columns, e.g. months since). Each cell keeps its figures in a tooltip.
  function heatMap(opt) {
    var cols = opt.columns.length;
    var L = 150,
      T = 58,
      rowH = 24;
    // The width of the other charts, so that text keeps its size however few the columns.
    var cell = Math.max(22, Math.min(48, Math.floor((860 - L - 20) / Math.max(cols, 1))));
    var W = Math.max(860, L + cols * cell + 20);
    var H = T + opt.rows.length * rowH + 50;
    var max = opt.max > 0 ? opt.max : 1;
    var g = '<svg class="chart heat" viewBox="0 0 ' + W + " " + H + '" role="img" aria-label="' + esc(opt.title) + '">';
    g += title(W, opt.title);
    opt.columns.forEach(function (c, j) {
      g += '<text x="' + (L + j * cell + cell / 2) + '" y="' + (T - 8) + '" text-anchor="middle">' + esc(c) + "</text>";
    });
    g += '<text x="' + (L + (cols * cell) / 2) + '" y="' + (T - 28) + '" text-anchor="middle">' + esc(opt.x) + "</text>";
    opt.rows.forEach(function (r, i) {
      var y = T + i * rowH;
      g += '<text x="' + (L - 8) + '" y="' + (y + 16) + '" text-anchor="end">' + esc(r.name) + "</text>";
      r.cells.forEach(function (c, j) {
        if (c == null || c.value == null) return;
        var share = Math.max(0, Math.min(1, c.value / max));
        // From near white to the palette's blue.
        var mix = function (lo, hi) {
          return Math.round(lo + (hi - lo) * share);
        };
        var fill = "rgb(" + mix(240, 31) + "," + mix(244, 74) + "," + mix(250, 140) + ")";
        g += '<rect class="cell" x="' + (L + j * cell) + '" y="' + y + '" width="' + (cell - 1) + '" height="';
        g += rowH - 1 + '" fill="' + fill + '"><title>' + esc(c.tip) + "</title></rect>";
        if (cell >= 30 && c.text) {
          g += '<text x="' + (L + j * cell + cell / 2) + '" y="' + (y + 16) + '" text-anchor="middle" style="font-size:11px';
          g += share > 0.55 ? ";fill:#fff" : "";
          g += '">' + esc(c.text) + "</text>";
        }
      });
    });
    g += '<text transform="translate(14,' + (T + (opt.rows.length * rowH) / 2) + ') rotate(-90)" text-anchor="middle">';
    g += esc(opt.y) + "</text>";
    return g + "</svg>";
  }

  // A map of users: opt.points [[x, y, group]] (group -1: in none), opt.names by group.
  // Framed on robust quantiles (outliers pinned to the edge as open circles, counted in a
  // note); small groups drawn last and larger, so a 57-user segment stays visible; each
  // group's name at its median point, placed so that no two names overlap.
  function scatter(opt) {
    var W = 860;
    var H = 480;
    var box = { L: 90, T: 30, right: W - 24, bottom: H - 48 };
    if (!opt.points.length) return '<p class="note">No map stored with this run.</p>';
    var fx = robustFrame(
      opt.points.map(function (p) {
        return p[0];
      }),
    );
    var fy = robustFrame(
      opt.points.map(function (p) {
        return p[1];
      }),
    );
    var X = function (v) {
      return box.L + ((v - fx[0]) / (fx[1] - fx[0])) * (box.right - box.L);
    };
    var Y = function (v) {
      return box.T + (1 - (v - fy[0]) / (fy[1] - fy[0])) * (box.bottom - box.T);
    };
    var clamp = function (v, f) {
      return Math.min(Math.max(v, f[0]), f[1]);
    };
    var groups = {};
    opt.points.forEach(function (p) {
      (groups[p[2]] = groups[p[2]] || []).push(p);
    });
    var order = Object.keys(groups)
      .map(Number)
      .sort(function (a, b) {
        return groups[b].length - groups[a].length;
      });
    var colour = function (k) {
      return k < 0 ? "#c8c8c8" : COLORS[k % COLORS.length];
    };
    var g = '<svg class="chart" id="segment-map" viewBox="0 0 ' + W + " " + H + '" role="img" aria-label="';
    g += esc(opt.title) + '">' + title(W, opt.title);
    var yt = ticks(fy[0], fy[1], 6);
    yt.values.forEach(function (t) {
      g += '<line x1="' + box.L + '" x2="' + box.right + '" y1="' + Y(t) + '" y2="' + Y(t) + '" stroke="#f0f0f0"/>';
      g +=
        '<text x="' + (box.L - 6) + '" y="' + (Y(t) + 4) + '" text-anchor="end">' + lib.fmt(t, yt.decimals) + "</text>";
    });
    var xt = ticks(fx[0], fx[1], 8);
    xt.values.forEach(function (t) {
      g +=
        '<text x="' +
        X(t) +
        '" y="' +
        (box.bottom + 16) +
        '" text-anchor="middle">' +
        lib.fmt(t, xt.decimals) +
        "</text>";
    });
    g += axes(box, opt.x, opt.y);
    var pinned = 0;
    // Largest groups first, so the small ones are drawn on top.
    order.forEach(function (k) {
      var share = groups[k].length / opt.points.length;
      var r = share < 0.02 ? 4 : share < 0.1 ? 3.2 : 2.4;
      groups[k].forEach(function (p) {
        var out = p[0] !== clamp(p[0], fx) || p[1] !== clamp(p[1], fy);
        var cx = X(clamp(p[0], fx)).toFixed(1);
        var cy = Y(clamp(p[1], fy)).toFixed(1);
        if (out) {
          pinned++;
          g +=
            '<circle class="pt pinned" cx="' + cx + '" cy="' + cy + '" r="' + r + '" fill="none" stroke="' + colour(k);
          g += '"><title>outside the frame: (' + lib.fmt(p[0], 2) + ", " + lib.fmt(p[1], 2) + ")</title></circle>";
        } else {
          g +=
            '<circle class="pt" cx="' +
            cx +
            '" cy="' +
            cy +
            '" r="' +
            r +
            '" fill="' +
            colour(k) +
            '" fill-opacity="0.7"/>';
        }
      });
    });
    var named = order.filter(function (k) {
      return k >= 0 && opt.names[k] != null;
    });
    var anchors = named.map(function (k) {
      var mx = quantile(
        groups[k].map(function (p) {
          return clamp(p[0], fx);
        }),
        0.5,
      );
      var my = quantile(
        groups[k].map(function (p) {
          return clamp(p[1], fy);
        }),
        0.5,
      );
      return { x: X(mx), y: Y(my), w: 8.4 * String(opt.names[k]).length + 10, h: 20 };
    });
    placeLabels(anchors, W, H).forEach(function (c, i) {
      var name = esc(opt.names[named[i]]);
      g +=
        '<text class="centre-label" x="' + c.x.toFixed(1) + '" y="' + (c.y + 5).toFixed(1) + '" text-anchor="middle"';
      g += ' style="font-weight:600;paint-order:stroke;stroke:#fff;stroke-width:4px">' + name + "</text>";
    });
    g += "</svg>";
    var entries = order
      .filter(function (k) {
        return k >= 0;
      })
      .sort(function (a, b) {
        return a - b;
      })
      .map(function (k) {
        return { name: opt.names[k] + " (" + groups[k].length + ")", color: colour(k) };
      });
    if (groups[-1]) entries.push({ name: "in no segment (" + groups[-1].length + ")", color: colour(-1) });
    var note = pinned
      ? '<p class="note" id="map-pinned">' +
        pinned +
        " users beyond the 1st–99th percentile frame are pinned to its edge.</p>"
      : "";
    return g + legend(entries, 8) + note;
  }

  window.tailorCharts = {
    COLORS: COLORS,
    HOUR: HOUR,
    DAY: DAY,
    ticks: ticks,
    timeTicks: timeTicks,
    quantile: quantile,
    robustFrame: robustFrame,
    placeLabels: placeLabels,
    lineChart: lineChart,
    barChart: barChart,
    scatter: scatter,
    heatMap: heatMap,
  };
})();
