// Click a header of a sortable table to sort by that column (numbers numerically).
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var asc=!th.classList.contains('asc'); t.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc')});
    th.classList.add(asc?'asc':'desc'); var b=t.tBodies[0], rows=Array.from(b.rows);
    rows.sort(function(x,y){var a=x.cells[i].dataset.v||x.cells[i].textContent, c=y.cells[i].dataset.v||y.cells[i].textContent;
      var na=parseFloat(a), nc=parseFloat(c); var r=(!isNaN(na)&&!isNaN(nc))?na-nc:a.localeCompare(c); return asc?r:-r;});
    rows.forEach(function(r){b.appendChild(r)});});});});
