// GET one of the API's JSON resources with the page's session; an answer other than 2xx is
// an error naming the URL and status, for the caller to show or log.
export async function fetchJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}
