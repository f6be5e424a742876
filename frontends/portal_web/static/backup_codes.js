// Copy and download for the backup codes page. Without JavaScript the codes are still
// on the page to write down; these buttons only appear when they can work.
"use strict";
(function () {
  var list = document.getElementById("backup-codes");
  if (!list) { return; }
  var codes = Array.prototype.map.call(list.querySelectorAll("li"), function (li) {
    return li.textContent.trim();
  });
  var text = codes.join("\n") + "\n";
  var status = document.getElementById("copy-status");
  var copy = document.getElementById("copy-codes");
  var download = document.getElementById("download-codes");
  if (navigator.clipboard && window.isSecureContext) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(text).then(function () {
        status.textContent = "Copied.";
      }, function () {
        status.textContent = "Copy failed: select the codes and copy them.";
      });
    });
  }
  download.hidden = false;
  download.addEventListener("click", function () {
    var url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    var link = document.createElement("a");
    link.href = url;
    link.download = "backup-codes.txt";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    status.textContent = "Downloaded backup-codes.txt.";
  });
})();
