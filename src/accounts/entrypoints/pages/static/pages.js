// The pages' one script (the Content-Security-Policy allows no inline script): tell GOV.UK Frontend's CSS
// that JavaScript runs, then start its components. Every page works without it.
document.body.classList.add("js-enabled");
if ("noModule" in HTMLScriptElement.prototype) {
  document.body.classList.add("govuk-frontend-supported");
}
import("/assets/govuk-frontend.min.js").then((frontend) => frontend.initAll()).catch(() => {});
